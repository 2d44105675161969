"""An OpenStack Swift target through python-swiftclient, authenticated by Keystone v3 (an
application credential, or a user and project) or, for test rigs and legacy clouds, by v1.

Objects are `PREFIX/HOST/NAME` in the target's container with duplicity's own names, so
`swift://CONTAINER/PREFIX/HOST` is a duplicity target as it is. A PUT is atomic and carries
the file's md5 as its ETag, so Swift refuses a body that arrived changed; our sha256 and size
go in `X-Object-Meta-*`. A file above the part size (Swift takes at most 5 GiB in one PUT) is
a Static Large Object: segments in `CONTAINER_segments` under `PREFIX/HOST/NAME/SHA256/SIZE/`,
its manifest written last, so a push killed at any point leaves nothing that counts as copied;
the next push removes the segments no manifest uses. Swift has no storage classes: every
object is STANDARD (never archived, no minimum duration).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import keystoneauth1.exceptions
import requests
from keystoneauth1 import session as keystone_session
from keystoneauth1.identity import v3
from swiftclient import ClientException, Connection

from agent.config.load import OffsiteTarget
from agent.errors import OffsiteFailed
from agent.offsite.s3 import Head, RemoteObject

STANDARD = "STANDARD"
TIMEOUT = 120  # seconds per request
RETRIES = 3  # swiftclient's own, with its backoff from 1 s
# At DEBUG (dupctl --debug) these log requests; keep them to what goes wrong.
for _name in ("swiftclient", "keystoneauth", "urllib3"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class SwiftStore:
    """A target's container, for one push, status, prune or restore."""

    def __init__(self, target: OffsiteTarget, credentials: Mapping[str, str]) -> None:
        assert target.container is not None and target.auth_url is not None
        self.target = target
        self.container = target.container
        self.segments = f"{target.container}_segments"
        self.session = _keystone(target.auth_url, credentials)
        self.credentials = credentials
        self._local = threading.local()  # a swiftclient Connection is not thread-safe

    def key(self, host: str, name: str) -> str:
        return f"{self.target.prefix}/{host}/{name}"

    def duplicity_url(self, host: str) -> str:
        """The host's copy as a duplicity target (with duplicity_env)."""
        return f"swift://{self.container}/{self.target.prefix}/{host}"

    def duplicity_env(self) -> dict[str, str]:
        """A fresh token and the storage URL for duplicity's swift backend, which cannot use
        an application credential itself (SWIFT_PREAUTH* for its Connection, OS_* for its
        SwiftService size checks); each call authenticates anew, as the token expires."""
        with self._errors("authenticating"):
            if self.session is not None:
                self.session.invalidate()
            url, token = self._connection().get_auth()
        return {"SWIFT_PREAUTHURL": url, "SWIFT_PREAUTHTOKEN": token,
                "OS_STORAGE_URL": url, "OS_AUTH_TOKEN": token}  # fmt: skip

    def listing(self, host: str) -> dict[str, RemoteObject]:
        """Every object of the host's folder, by name (none while the container is missing)."""
        prefix = self.key(host, "")
        found = {}
        for item in self._list(self.container, prefix, f"listing {prefix}"):
            name = item["name"].removeprefix(prefix)
            if "/" not in name:
                modified = datetime.fromisoformat(item["last_modified"]).replace(tzinfo=UTC)
                etag = item.get("slo_etag", item["hash"]).strip('"')
                found[name] = RemoteObject(name, item["bytes"], etag, STANDARD, modified)
        return found

    def head(self, host: str, name: str) -> Head:
        with self._errors(f"reading {self.key(host, name)}"):
            answer = self._connection().head_object(self.container, self.key(host, name))
        return Head(
            size=int(answer["content-length"]),
            etag=answer["etag"].strip('"'),
            sha256=answer.get("x-object-meta-sha256"),
            checksum=None,  # Swift's own checksum is the md5 ETag, checked by the PUT
            storage_class=STANDARD,
            thaw=None,
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
        """PUT `file` as `name`, its sha256 and size in the metadata: one PUT up to
        `part_size`, a Static Large Object of segments of that size above."""
        assert storage_class == STANDARD, "swift has no storage classes"
        key = self.key(host, name)
        with self._errors(f"uploading {key}"):
            size = file.stat().st_size
            parts = _part_md5s(file, part_size)
            meta = {"X-Object-Meta-Sha256": sha256, "X-Object-Meta-Size": str(size)}
            if len(parts) == 1:
                self._put(self.container, key, file, 0, size, parts[0], meta, progress)
                return
            manifest = []
            for index, md5 in enumerate(parts):
                start = index * part_size
                length = min(part_size, size - start)
                segment = f"{key}/{sha256}/{size}/{index:08d}"
                self._put(self.segments, segment, file, start, length, md5, {}, progress)
                manifest.append(
                    {"path": f"/{self.segments}/{segment}", "etag": md5, "size_bytes": length}
                )
            self._connection().put_object(
                self.container, key, json.dumps(manifest), headers=meta,
                query_string="multipart-manifest=put",
            )  # fmt: skip

    def abort_uploads(self, host: str) -> int:
        """Delete the segments a killed push left under the host's folder (those of no
        manifest there with their sha256); how many large objects' worth."""
        prefix = self.key(host, "")
        groups: dict[str, list[str]] = {}
        for item in self._list(self.segments, prefix, f"listing the segments of {prefix}"):
            groups.setdefault(item["name"].rsplit("/", 1)[0], []).append(item["name"])
        removed = 0
        for group, segments in groups.items():
            name, sha256, _ = group.removeprefix(prefix).rsplit("/", 2)
            with self._errors(f"deleting the unused segments of {prefix}{name}"):
                try:  # only a manifest that is not there (404) or is another file's frees them
                    head = self._connection().head_object(self.container, prefix + name)
                    used = head.get("x-object-meta-sha256") == sha256
                except ClientException as error:
                    if error.http_status != 404:
                        raise
                    used = False
                if not used:
                    for segment in segments:
                        self._delete(self.segments, segment)
                    removed += 1
        return removed

    def delete(self, host: str, names: Sequence[str]) -> None:
        """Delete `names` of the host's folder, in that order (a large object with its
        segments); one already gone counts as deleted."""
        for name in names:
            key = self.key(host, name)
            with self._errors(f"deleting {key}"):
                try:
                    head = self._connection().head_object(self.container, key)
                except ClientException as error:
                    if error.http_status == 404:
                        continue
                    raise
                # Swift refuses multipart-manifest=delete of a plain object
                large = head.get("x-static-large-object", "").lower() == "true"
                self._delete(self.container, key, "multipart-manifest=delete" if large else None)

    def request_thaw(self, host: str, name: str, tier: str, days: int) -> None:
        """Never called: Swift objects are always readable (Head.readable)."""
        raise OffsiteFailed(f"offsite {self.target.name}: swift objects need no thaw")

    def _connection(self) -> Connection:
        """This thread's Connection (the Keystone session, and so its token, is shared)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self.session is not None:
                options = {"region_name": self.target.region, "service_type": "object-store",
                           "endpoint_type": "public"}  # fmt: skip
                connection = Connection(session=self.session, os_options=options,
                                        retries=RETRIES, timeout=TIMEOUT)  # fmt: skip
            else:
                connection = Connection(
                    authurl=self.target.auth_url, user=self.credentials["user"],
                    key=self.credentials["key"], auth_version="1", retries=RETRIES,
                    timeout=TIMEOUT,
                )  # fmt: skip
            self._local.connection = connection
        return connection

    def _list(self, container: str, prefix: str, doing: str) -> list[dict[str, Any]]:
        with self._errors(doing):
            try:
                _, items = self._connection().get_container(
                    container, prefix=prefix, full_listing=True
                )
            except ClientException as error:
                if error.http_status == 404:  # no container yet: nothing copied
                    return []
                raise
        return items

    def _put(
        self,
        container: str,
        name: str,
        file: Path,
        start: int,
        length: int,
        md5: str,
        headers: Mapping[str, str],
        progress: Callable[[int], None],
    ) -> None:
        """One PUT of `length` bytes of `file` from `start`; the container made if missing."""
        with file.open("rb") as stream:
            stream.seek(start)
            body = _Metered(stream, progress, self._bandwidth())
            for attempt in (1, 2):
                try:
                    self._connection().put_object(
                        container, name, body, content_length=length, etag=md5,
                        headers=dict(headers),
                    )  # fmt: skip
                    return
                except ClientException as error:
                    if error.http_status != 404 or attempt == 2:
                        raise
                self._create(container)  # idempotent: another thread may have made it
                stream.seek(start)

    def _create(self, container: str) -> None:
        """Make `container` (with the target's storage policy, if any)."""
        policy = self.target.storage_policy
        headers = {"X-Storage-Policy": policy} if policy else None
        self._connection().put_container(container, headers=headers)

    def _delete(self, container: str, name: str, query: str | None = None) -> None:
        try:
            self._connection().delete_object(container, name, query_string=query)
        except ClientException as error:
            if error.http_status != 404:
                raise

    def _bandwidth(self) -> int | None:
        limit = self.target.bandwidth_limit
        return max(1, limit // self.target.concurrency) if limit else None

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """swiftclient's and keystoneauth's errors as OffsiteFailed naming the target and
        what was done (status, reason and Swift's short answer: never a credential or token)."""
        check = (f"check container {self.container} and the credentials in "
                 f"{self.target.credentials_file}")  # fmt: skip
        try:
            yield
        except ClientException as error:
            said = _short(error.http_response_content)
            if error.http_status == 401:
                said = "the credentials were refused"
            status = f"{error.http_status} {error.http_reason}" if error.http_status else error.msg
            raise OffsiteFailed(
                f"offsite {self.target.name}: {doing} failed: {status}"
                + (f": {said}" if said else ""),
                hint=check,
            ) from None
        except keystoneauth1.exceptions.ClientException as error:
            raise OffsiteFailed(
                f"offsite {self.target.name}: {doing} failed: Keystone: "
                f"{type(error).__name__}: {_short(str(error)) or 'no details'}",
                hint=f"check {self.target.auth_url} and the credentials in "
                f"{self.target.credentials_file}",
            ) from None
        except requests.RequestException as error:
            where = urlsplit(error.request.url).netloc if error.request else "?"
            raise OffsiteFailed(
                f"offsite {self.target.name}: {doing} failed: {type(error).__name__} ({where})",
                hint=f"check that this server reaches {self.target.auth_url} and the "
                "storage URL its catalog gives",
            ) from None
        except OSError as error:  # a local file (pruned meanwhile, unreadable)
            raise OffsiteFailed(
                f"offsite {self.target.name}: {doing} failed: {error.strerror}: {error.filename}",
                hint="the next push tries again",
            ) from None


def _keystone(auth_url: str, credentials: Mapping[str, str]) -> keystone_session.Session | None:
    """A Keystone v3 session for an application credential or a user and project; None
    for v1 (`auth_version = 1`, `user`, `key`), which swiftclient does itself."""
    if credentials.get("application_credential_id"):
        auth: v3.Auth = v3.ApplicationCredential(
            auth_url=auth_url,
            application_credential_id=credentials["application_credential_id"],
            application_credential_secret=credentials["application_credential_secret"],
        )
    elif credentials.get("username"):
        auth = v3.Password(
            auth_url=auth_url,
            username=credentials["username"],
            password=credentials["password"],
            project_name=credentials["project_name"],
            user_domain_name=credentials["user_domain_name"],
            project_domain_name=credentials["project_domain_name"],
        )
    else:
        return None
    return keystone_session.Session(auth=auth, timeout=TIMEOUT)


def _part_md5s(file: Path, part_size: int) -> list[str]:
    """The md5 of each `part_size` piece of `file` (one for a file up to that size): what
    Swift checks each PUT's body against."""
    digests = []
    with file.open("rb") as stream:
        while True:
            digest = hashlib.md5(usedforsecurity=False)
            left = part_size
            while left and (chunk := stream.read(min(left, 1 << 20))):
                digest.update(chunk)
                left -= len(chunk)
            if left == part_size and digests:  # the end, on a part boundary
                break
            digests.append(digest.hexdigest())
            if left:
                break
    return digests


def _short(text: bytes | str | None) -> str:
    """Swift's or Keystone's answer if it is a short line (not an HTML page)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = " ".join((text or "").split())
    return "" if text.startswith("<") or len(text) > 200 else text


class _Metered:
    """A file as a PUT body: what is read told to `progress`, at most `rate` bytes per
    second (None: no limit); seek and tell let swiftclient retry from the start."""

    def __init__(self, stream: IO[bytes], progress: Callable[[int], None], rate: int | None):
        self.stream = stream
        self.progress = progress
        self.rate = rate
        self.began = time.monotonic()
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.progress(len(chunk))
        self.sent += len(chunk)
        if self.rate:
            ahead = self.sent / self.rate - (time.monotonic() - self.began)
            if ahead > 0:
                time.sleep(ahead)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.stream.seek(offset, whence)

    def tell(self) -> int:
        return self.stream.tell()
