"""An S3 target (AWS, or any S3 service by `endpoint_url`) through boto3.

Objects are `PREFIX/HOST/NAME` with duplicity's own names, so `s3:///BUCKET/PREFIX/HOST` is a
duplicity target as it is. A PUT is atomic: an object exists complete or not at all (a
multipart upload shows only once completed), so a push killed at any point leaves nothing
that counts as copied; the next push aborts the killed one's multipart uploads.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import boto3
import boto3.exceptions
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from agent.config.load import OffsiteTarget
from agent.errors import OffsiteFailed

ARCHIVED = ("GLACIER", "DEEP_ARCHIVE")  # not readable until restored (thawed)
# At DEBUG (dupctl --debug) botocore logs request headers and bodies, credentials included.
for _name in ("boto3", "botocore", "s3transfer", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)
TIMEOUTS = Config(
    connect_timeout=10, read_timeout=120, retries={"max_attempts": 4, "mode": "standard"}
)


@dataclass(frozen=True)
class RemoteObject:
    """One object of a host's folder on the target, as the listing says."""

    name: str
    size: int
    etag: str
    storage_class: str
    modified: datetime


@dataclass(frozen=True)
class Head:
    """What HEAD says of an object: its size, our sha256 metadata, its class and thaw."""

    size: int
    etag: str
    sha256: str | None  # what our metadata says
    checksum: str | None  # the service's own SHA-256 of a single-part object (hex), if any
    storage_class: str
    thaw: str | None  # None: never asked (or expired); "ongoing"; "done" (readable until expiry)

    @property
    def readable(self) -> bool:
        return self.storage_class not in ARCHIVED or self.thaw == "done"


class S3Store:
    """A target's bucket, for one push, status or restore."""

    def __init__(self, target: OffsiteTarget, credentials: Mapping[str, str]) -> None:
        assert target.bucket is not None
        self.target = target
        self.bucket = target.bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=target.endpoint_url,
            region_name=target.region,
            aws_access_key_id=credentials["aws_access_key_id"],
            aws_secret_access_key=credentials["aws_secret_access_key"],
            aws_session_token=credentials.get("aws_session_token"),
            config=TIMEOUTS,
        )
        self.credentials = credentials

    def key(self, host: str, name: str) -> str:
        return f"{self.target.prefix}/{host}/{name}"

    def duplicity_url(self, host: str) -> str:
        """The host's copy as a duplicity target (with duplicity_env and its endpoint)."""
        return f"s3:///{self.bucket}/{self.target.prefix}/{host}"

    def duplicity_env(self) -> dict[str, str]:
        """duplicity's boto3 backend reads its credentials from the environment (never argv)."""
        env = {
            "AWS_ACCESS_KEY_ID": self.credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["aws_secret_access_key"],
        }
        if token := self.credentials.get("aws_session_token"):
            env["AWS_SESSION_TOKEN"] = token
        if self.target.region:
            env["AWS_DEFAULT_REGION"] = self.target.region
        return env

    def listing(self, host: str) -> dict[str, RemoteObject]:
        """Every object of the host's folder, by name."""
        found = {}
        prefix = self.key(host, "")
        with self._errors(f"listing {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for item in page.get("Contents", ()):
                    name = item["Key"].removeprefix(prefix)
                    if "/" not in name:
                        found[name] = RemoteObject(
                            name, item["Size"], item["ETag"].strip('"'),
                            item.get("StorageClass", "STANDARD"), item["LastModified"],
                        )  # fmt: skip
        return found

    def head(self, host: str, name: str) -> Head:
        with self._errors(f"reading {self.key(host, name)}"):
            answer = self.client.head_object(
                Bucket=self.bucket, Key=self.key(host, name), ChecksumMode="ENABLED"
            )
        checksum = answer.get("ChecksumSHA256")
        whole = checksum and "-" not in checksum  # a multipart one is a checksum of parts
        restore = answer.get("Restore")
        thaw = (
            None
            if restore is None
            else "ongoing"
            if 'ongoing-request="true"' in restore
            else ("done")
        )
        return Head(
            size=answer["ContentLength"],
            etag=answer["ETag"].strip('"'),
            sha256=answer.get("Metadata", {}).get("sha256"),
            checksum=base64.b64decode(checksum).hex() if whole and checksum else None,
            storage_class=answer.get("StorageClass", "STANDARD"),
            thaw=thaw,
        )

    def upload(
        self,
        host: str,
        name: str,
        file: Path,
        *,
        sha256: str,
        storage_class: str,
        part_size: int,
        progress: Callable[[int], None],
    ) -> None:
        """PUT `file` as `name` in `storage_class`, its sha256 in the metadata: one PUT up to
        `part_size`, multipart above (parts of that size)."""
        extra: dict[str, object] = {
            "StorageClass": storage_class,
            "Metadata": {"sha256": sha256},
            "ChecksumAlgorithm": "SHA256",  # the service checks what it received
        }
        if self.target.server_side_encryption:
            extra["ServerSideEncryption"] = self.target.server_side_encryption
        transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=1,  # objects go in parallel, each in order
            use_threads=False,
            max_bandwidth=self._bandwidth(),
        )
        with self._errors(f"uploading {self.key(host, name)}"):
            self.client.upload_file(
                str(file), self.bucket, self.key(host, name), ExtraArgs=extra,
                Config=transfer, Callback=progress,
            )  # fmt: skip

    def abort_uploads(self, host: str) -> int:
        """Abort the multipart uploads a killed push left under the host's folder; how many."""
        prefix = self.key(host, "")
        aborted = 0
        with self._errors(f"listing the unfinished uploads of {prefix}"):
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for upload in page.get("Uploads", ()):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted

    def delete(self, host: str, names: Sequence[str]) -> None:
        """Delete `names` of the host's folder, in that order (batches of S3's 1000)."""
        for start in range(0, len(names), 1000):
            batch = [{"Key": self.key(host, name)} for name in names[start : start + 1000]]
            with self._errors(f"deleting from {self.key(host, '')}"):
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if errors := answer.get("Errors"):
                raise OffsiteFailed(
                    f"offsite {self.target.name}: {len(errors)} object(s) not deleted, e.g. "
                    f"{errors[0].get('Key')}: {errors[0].get('Code')}",
                    hint="the next prune tries again",
                )

    def request_thaw(self, host: str, name: str, tier: str, days: int) -> None:
        """Ask for a readable copy of an archived object for `days` (Bulk, Standard...)."""
        request = {"Days": days, "GlacierJobParameters": {"Tier": tier.capitalize()}}
        with self._errors(f"requesting a thaw of {self.key(host, name)}"):
            try:
                self.client.restore_object(
                    Bucket=self.bucket, Key=self.key(host, name), RestoreRequest=request
                )
            except botocore.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") != "RestoreAlreadyInProgress":
                    raise

    def _bandwidth(self) -> int | None:
        limit = self.target.bandwidth_limit
        return max(1, limit // self.target.concurrency) if limit else None

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """boto3's errors as OffsiteFailed naming the target and what was done (botocore's
        messages name the operation and the service's code, never a credential)."""
        try:
            yield
        except botocore.exceptions.ClientError as error:
            details = error.response.get("Error", {})
            raise OffsiteFailed(
                f"offsite {self.target.name}: {doing} failed: "
                f"{details.get('Code', '?')}: {details.get('Message', '')}".rstrip(": "),
                hint=f"check bucket {self.bucket} and the rights of the credentials in "
                f"{self.target.credentials_file}",
            ) from None
        except boto3.exceptions.S3UploadFailedError as error:  # a refused PUT, as boto3 says it
            raise OffsiteFailed(
                f"offsite {self.target.name}: {doing} failed: {error}",
                hint=f"check bucket {self.bucket} and the rights of the credentials in "
                f"{self.target.credentials_file}",
            ) from None
        except (botocore.exceptions.BotoCoreError, boto3.exceptions.Boto3Error) as error:
            raise OffsiteFailed(
                f"offsite {self.target.name}: {doing} failed: {type(error).__name__}: {error}",
                hint=f"check that this server reaches {self.target.endpoint_url or 'S3'}",
            ) from None
        except OSError as error:  # a local file (pruned meanwhile, unreadable)
            raise OffsiteFailed(
                f"offsite {self.target.name}: {doing} failed: {error.strerror}: {error.filename}",
                hint="the next push tries again",
            ) from None
