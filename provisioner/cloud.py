"""The one place that reaches the cloud: a Connection from clouds.yaml / OS_* variables,
with openstacksdk and keystoneauth failures turned into DupstackErrors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import openstack
from keystoneauth1 import exceptions as ks_exc
from openstack import connection
from openstack import exceptions as sdk_exc

from provisioner.errors import CloudError, NotFound

CREDENTIALS_HINT = (
    "give credentials the openstack way: --os-cloud NAME (clouds.yaml), OS_CLOUD, "
    "or source your project's openrc file"
)


@contextlib.contextmanager
def cloud_errors(action: str) -> Iterator[None]:
    """Turn the SDK's exceptions raised while doing `action` into one clear error."""
    try:
        yield
    except sdk_exc.NotFoundException as exc:
        raise NotFound(f"{action}: not found ({_detail(exc)})") from exc
    except sdk_exc.ConfigException as exc:
        raise CloudError(f"{action}: cloud configuration: {exc}", CREDENTIALS_HINT) from exc
    except (ks_exc.MissingRequiredOptions, ks_exc.NoMatchingPlugin) as exc:
        raise CloudError(f"{action}: no usable credentials ({exc})", CREDENTIALS_HINT) from exc
    except ks_exc.Unauthorized as exc:
        raise CloudError(
            f"{action}: the cloud rejected the credentials (401)",
            "check the user, password and project in clouds.yaml / OS_* variables",
        ) from exc
    except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.DiscoveryFailure) as exc:
        raise CloudError(
            f"{action}: cannot reach the cloud ({type(exc).__name__})",
            "check auth_url and your network, then try again",
        ) from exc
    except ks_exc.EndpointNotFound as exc:
        raise CloudError(
            f"{action}: the cloud's catalog has no endpoint for this service",
            "check the region (--os-region-name / region_name) or ask your cloud provider",
        ) from exc
    except sdk_exc.HttpException as exc:
        raise CloudError(f"{action}: {_detail(exc)}", "see the message above") from exc
    except sdk_exc.SDKException as exc:
        raise CloudError(f"{action}: {exc}") from exc


def _detail(exc: sdk_exc.SDKException) -> str:
    """The server's own explanation of an HTTP error, on one line."""
    details = getattr(exc, "details", None) or getattr(exc, "message", None) or str(exc)
    return " ".join(str(details).split())


def connect(cloud: str | None, object_store_region: str | None = None) -> connection.Connection:
    """A Connection from clouds.yaml (`cloud`, or OS_CLOUD) or OS_* variables; auth checked.
    `object_store_region` points Swift alone at another region (the stack stays where it is)."""
    overrides = {"object_store_region_name": object_store_region} if object_store_region else {}
    with cloud_errors("connecting to the cloud"):
        conn = openstack.connect(cloud=cloud, **overrides)
        # session.get_token(), unlike conn.authorize(), keeps keystoneauth's exception types.
        conn.session.get_token()
    return conn


def has_service(conn: connection.Connection, service_type: str) -> bool:
    """Whether the cloud's catalog lists `service_type` (e.g. compute, image, network)."""
    with cloud_errors(f"reading the service catalog for {service_type}"):
        return bool(conn.has_service(service_type))


@contextlib.contextmanager
def unlogged() -> Iterator[None]:
    """No DEBUG records while a response carries a secret: at --debug keystoneauth logs
    every request and response body."""
    previous = logging.root.manager.disable
    logging.disable(logging.DEBUG)
    try:
        yield
    finally:
        logging.disable(previous)
