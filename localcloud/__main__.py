"""``python -m localcloud WORKDIR``: run a local cloud until Ctrl-C / SIGTERM."""

from __future__ import annotations

import signal
import sys
import tempfile

from localcloud.services import start_local_cloud


def main(argv: list[str]) -> int:
    """Start, print how to reach it, stop cleanly on SIGINT/SIGTERM."""
    workdir = argv[0] if argv else tempfile.mkdtemp(prefix="localcloud-")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with start_local_cloud(workdir) as cloud:
        print(f"export OS_CLIENT_CONFIG_FILE={cloud.clouds_yaml} OS_CLOUD={cloud.cloud_name}")
        print(f"# Keystone {cloud.auth_url}  Heat {cloud.heat_url}")
        print(f"# stack create -e {cloud.environment_file}")
        print(f"# logs in {cloud.workdir / 'logs'}; Ctrl-C stops", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
