"""localcloud: a real Keystone and a real Heat on loopback, for tests and demos.

Not shipped to users. Client side imports only the stdlib and PyYAML; the
services themselves run under the OpenStack venv (``.venv-openstack``).
"""

from localcloud.services import (
    CLOUD_NAME,
    ENV_DIR,
    LocalCloud,
    LocalCloudError,
    available,
    openstack_venv,
    start_local_cloud,
)

__all__ = [
    "CLOUD_NAME",
    "ENV_DIR",
    "LocalCloud",
    "LocalCloudError",
    "available",
    "openstack_venv",
    "start_local_cloud",
]
