"""Start and stop a real Keystone and a real Heat on loopback.

Client side only: stdlib + PyYAML. The services run as subprocesses under the
OpenStack venv's python (``_runner.py``); see README.md.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
ENV_DIR = PACKAGE_DIR / "env"
RUNNER = PACKAGE_DIR / "_runner.py"
VENV_VARIABLE = "DUPSTACK_OPENSTACK_VENV"
REGION = "RegionOne"
CLOUD_NAME = "local"
LOOPBACK = "127.0.0.1"


class LocalCloudError(RuntimeError):
    """The local cloud could not start (the message includes the log tails)."""


def openstack_venv() -> Path:
    """The venv holding Keystone and Heat (``$DUPSTACK_OPENSTACK_VENV``)."""
    return Path(os.environ.get(VENV_VARIABLE) or REPO_DIR / ".venv-openstack")


def available(venv: Path | None = None) -> bool:
    """Whether the OpenStack venv is installed (``make .venv-openstack/.stamp``)."""
    venv = venv or openstack_venv()
    return (venv / "bin" / "python").exists() and (venv / "bin" / "keystone-manage").exists()


@dataclass
class LocalCloud:
    """A running Keystone + Heat pair; stop it with :meth:`stop` (or ``with``)."""

    workdir: Path
    auth_url: str
    heat_url: str
    clouds_yaml: Path
    environment_file: Path
    logs: dict[str, Path]
    username: str
    password: str
    project_name: str
    admin_password: str
    cloud_name: str = CLOUD_NAME
    region_name: str = REGION
    state_file: Path | None = None
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def __enter__(self) -> LocalCloud:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the service processes still running."""
        return {name: p.pid for name, p in self._processes.items() if p.poll() is None}

    def client_env(self) -> dict[str, str]:
        """Variables that point openstacksdk / the CLI at this cloud."""
        return {"OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": self.cloud_name}

    def fake_resources(self, kind: str | None = None) -> dict[str, Any]:
        """The stand-ins' records (``networks``, ``volumes``, ``servers``...)."""
        if self.state_file is None or not self.state_file.exists():
            return {}
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        return data.get(kind, {}) if kind else data

    def log_tail(self, lines: int = 40) -> str:
        """The end of every service log, for failure messages."""
        return _log_tails(self.logs, lines)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM each service's process group, SIGKILL what is left; idempotent."""
        for proc in self._processes.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self._processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)
        self._processes.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _log_tails(logs: dict[str, Path], lines: int) -> str:
    parts = []
    for name, path in logs.items():
        if path.exists() and path.stat().st_size:
            tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name} ({path}) ---\n" + "\n".join(tail))
    return "\n".join(parts)


def _listen() -> socket.socket:
    """A listening loopback socket on a free port, inheritable by a child."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def _fernet_repository(path: Path) -> None:
    """What ``keystone-manage fernet_setup`` writes: staged key 0, primary key 1."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for index in ("0", "1"):
        key = path / index
        key.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
        key.chmod(0o600)


def _ini(sections: dict[str, dict[str, Any]]) -> str:
    out = []
    for section, values in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {value}" for key, value in values.items())
        out.append("")
    return "\n".join(out)


def _keystone_conf(work: Path, logs: Path) -> str:
    return _ini(
        {
            "DEFAULT": {"log_file": logs / "keystone.log", "debug": "false"},
            "database": {"connection": f"sqlite:///{work / 'keystone.sqlite'}?timeout=30"},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": work / "fernet-keys"},
            "fernet_receipts": {"key_repository": work / "fernet-keys"},
            "credential": {"key_repository": work / "credential-keys"},
            # Every password authentication hashes: keep bcrypt cheap.
            "identity": {"password_hash_rounds": 4},
        }
    )


def _heat_conf(
    work: Path, logs: Path, venv: Path, keystone: str, heat_password: str, debug: bool
) -> str:
    keystone_auth = {
        "auth_type": "password",
        "auth_url": keystone,
        "username": "heat",
        "password": heat_password,
        "user_domain_name": "Default",
        "project_name": "service",
        "project_domain_name": "Default",
    }
    return _ini(
        {
            "DEFAULT": {
                "log_file": logs / "heat.log",
                "debug": str(debug).lower(),
                "host": "localcloud",
                # API and engine share one process: in-memory RPC.
                "transport_url": "fake://",
                "num_engine_workers": 1,
                "auth_encryption_key": secrets.token_hex(16),
                "plugin_dirs": ENV_DIR / "plugins",
                "region_name_for_services": REGION,
                "max_stacks_per_tenant": 1000,
            },
            "database": {"connection": f"sqlite:///{work / 'heat.sqlite'}?timeout=30"},
            "paste_deploy": {"api_paste_config": venv / "etc" / "heat" / "api-paste.ini"},
            "oslo_messaging_notifications": {"driver": "noop"},
            "keystone_authtoken": {
                **keystone_auth,
                "www_authenticate_uri": keystone,
                "service_token_roles_required": "true",
            },
            "trustee": {
                key: keystone_auth[key]
                for key in ("auth_type", "auth_url", "username", "password", "user_domain_name")
            },
            "clients_keystone": {"auth_uri": keystone},
            "clients": {"endpoint_type": "public"},
        }
    )


def _request(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[Any, Any]:
    """JSON request to a loopback service: (decoded body or None, headers)."""
    request = urllib.request.Request(  # noqa: S310 - URL built here, loopback only
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        raw = response.read()
        return (json.loads(raw) if raw else None), response.headers


def _password_auth(user: str, password: str, project: str) -> dict[str, Any]:
    domain = {"id": "default"}
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": domain, "password": password}},
            },
            "scope": {"project": {"name": project, "domain": domain}},
        }
    }


class _Keystone:
    """Tiny stdlib client for the admin calls the setup needs."""

    def __init__(self, url: str, admin_password: str) -> None:
        self.url = url.rstrip("/")
        auth = _password_auth("admin", admin_password, "admin")
        _, headers = _request("POST", self.url + "/auth/tokens", auth)
        self.token: str = headers["X-Subject-Token"]

    def call(self, method: str, path: str, body: Any = None) -> tuple[Any, Any]:
        return _request(method, self.url + path, body, self.token)

    def create(self, collection: str, **attrs: Any) -> str:
        singular = collection.rstrip("s")
        body, _ = self.call("POST", f"/{collection}", {singular: attrs})
        return str(body[singular]["id"])

    def ids(self, collection: str) -> dict[str, str]:
        body, _ = self.call("GET", f"/{collection}")
        return {item["name"]: item["id"] for item in body[collection]}

    def grant(self, project: str, user: str, role: str) -> None:
        self.call("PUT", f"/projects/{project}/users/{user}/roles/{role}")


def _setup_identity(
    keystone: str, admin_password: str, heat_password: str, demo_password: str, heat_url: str
) -> None:
    """Projects, users, roles and the orchestration endpoints Heat needs."""
    ks = _Keystone(keystone, admin_password)
    roles = ks.ids("roles")
    for name in ("heat_stack_owner", "heat_stack_user"):
        if name not in roles:
            roles[name] = ks.create("roles", name=name)
    service_project = ks.create("projects", name="service", domain_id="default")
    demo_project = ks.create("projects", name="demo", domain_id="default")
    heat = ks.create(
        "users", name="heat", password=heat_password, domain_id="default",
        default_project_id=service_project,
    )  # fmt: skip
    demo = ks.create(
        "users", name="demo", password=demo_password, domain_id="default",
        default_project_id=demo_project,
    )  # fmt: skip
    for role in ("admin", "service"):
        ks.grant(service_project, heat, roles[role])
    for role in ("member", "heat_stack_owner"):
        ks.grant(demo_project, demo, roles[role])
    service = ks.create("services", type="orchestration", name="heat", enabled=True)
    for interface in ("public", "internal", "admin"):
        ks.create(
            "endpoints", service_id=service, interface=interface, region_id=REGION,
            url=heat_url + "/%(project_id)s",
        )  # fmt: skip


def _http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - loopback
            return True
    except urllib.error.HTTPError:
        return True  # e.g. Heat's "300 Multiple Choices" version document
    except OSError:
        return False


def _write_clouds_yaml(path: Path, auth_url: str, password: str) -> None:
    cloud = {
        "auth": {
            "auth_url": auth_url,
            "username": "demo",
            "password": password,
            "project_name": "demo",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "auth_type": "password",
        "region_name": REGION,
        "identity_api_version": 3,
        "interface": "public",
    }
    path.write_text(yaml.safe_dump({"clouds": {CLOUD_NAME: cloud}}, sort_keys=False))
    path.chmod(0o600)


def start_local_cloud(
    workdir: str | os.PathLike[str],
    *,
    venv: str | os.PathLike[str] | None = None,
    timeout: float = 90,
    debug: bool = False,
) -> LocalCloud:
    """Start Keystone and Heat with all their state under ``workdir``.

    Returns once both answer authenticated requests. On failure everything
    started is stopped and :class:`LocalCloudError` carries the log tails.
    """
    work = Path(workdir).resolve()
    venv_dir = Path(venv) if venv else openstack_venv()
    if not available(venv_dir):
        raise LocalCloudError(
            f"no OpenStack venv at {venv_dir}: run `make .venv-openstack/.stamp` "
            f"or set {VENV_VARIABLE}"
        )
    used = [
        name
        for name in ("keystone.sqlite", "heat.sqlite", "fake-cloud.json")
        if (work / name).exists()
    ]
    if used:
        raise LocalCloudError(
            f"{work} already holds a local cloud ({', '.join(used)}): use an empty dir"
        )
    python = venv_dir / "bin" / "python"
    logs_dir = work / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    logs = {
        name: logs_dir / f"{name}.log"
        for name in (
            "keystone-manage", "keystone", "keystone-process", "keystone-access",
            "heat", "heat-process", "heat-access",
        )
    }  # fmt: skip

    keystone_sock, heat_sock = _listen(), _listen()
    auth_url = f"http://{LOOPBACK}:{keystone_sock.getsockname()[1]}/v3"
    heat_url = f"http://{LOOPBACK}:{heat_sock.getsockname()[1]}/v1"
    admin_password, heat_password, demo_password = (secrets.token_urlsafe(16) for _ in range(3))

    (work / "keystone.conf").write_text(_keystone_conf(work, logs_dir))
    (work / "heat.conf").write_text(
        _heat_conf(work, logs_dir, venv_dir, auth_url, heat_password, debug)
    )
    _fernet_repository(work / "fernet-keys")
    _fernet_repository(work / "credential-keys")
    state_file = work / "fake-cloud.json"
    clouds_yaml = work / "clouds.yaml"
    _write_clouds_yaml(clouds_yaml, auth_url, demo_password)

    cloud = LocalCloud(
        workdir=work,
        auth_url=auth_url,
        heat_url=heat_url,
        clouds_yaml=clouds_yaml,
        environment_file=ENV_DIR / "environment.yaml",
        logs=logs,
        username="demo",
        password=demo_password,
        project_name="demo",
        admin_password=admin_password,
        state_file=state_file,
    )
    child_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OS_", "PYTHON"))},
        "LOCALCLOUD_STATE": str(state_file),
        "LOCALCLOUD_CATALOGUE": str(ENV_DIR / "catalogue.yaml"),
        "PYTHONWARNINGS": "ignore",
    }

    def spawn(service: str, sock: socket.socket, conf: str) -> None:
        with open(logs[f"{service}-process"], "ab") as out:
            cloud._processes[service] = subprocess.Popen(
                [
                    str(python), str(RUNNER), service, "--fd", str(sock.fileno()),
                    "--config", str(work / conf),
                    "--access-log", str(logs[f"{service}-access"]),
                    "--parent-pid", str(os.getpid()),
                ],
                cwd=work, env=child_env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),), start_new_session=True,
            )  # fmt: skip

    def manage(*args: str) -> None:
        with open(logs["keystone-manage"], "ab") as out:
            done = subprocess.run(
                [str(venv_dir / "bin" / "keystone-manage"), "--config-file",
                 str(work / "keystone.conf"), *args],
                cwd=work, env=child_env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, timeout=timeout, check=False,
            )  # fmt: skip
        if done.returncode:
            raise LocalCloudError(f"keystone-manage {args[0]} failed")

    deadline = time.monotonic() + timeout
    try:
        # Heat migrates its database and loads its plugins meanwhile.
        spawn("heat", heat_sock, "heat.conf")
        manage("db_sync")
        manage(
            "bootstrap", "--bootstrap-password", admin_password,
            "--bootstrap-region-id", REGION,
            "--bootstrap-admin-url", auth_url, "--bootstrap-internal-url", auth_url,
            "--bootstrap-public-url", auth_url,
        )  # fmt: skip
        spawn("keystone", keystone_sock, "keystone.conf")
        _wait(cloud, "keystone", auth_url, deadline)
        _setup_identity(auth_url, admin_password, heat_password, demo_password, heat_url)
        _wait(cloud, "heat", f"{heat_url.rsplit('/', 1)[0]}/", deadline)
        _check_heat(cloud)
    except BaseException as exc:
        cloud.stop()
        if isinstance(exc, LocalCloudError | OSError | subprocess.SubprocessError):
            raise LocalCloudError(f"{exc}\n{cloud.log_tail()}") from exc
        raise
    finally:
        keystone_sock.close()
        heat_sock.close()
    return cloud


def _wait(cloud: LocalCloud, service: str, url: str, deadline: float) -> None:
    proc = cloud._processes[service]
    while not _http_ready(url):
        if proc.poll() is not None:
            raise LocalCloudError(f"{service} exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise LocalCloudError(f"{service} did not answer on {url} in time")
        time.sleep(0.1)


def _check_heat(cloud: LocalCloud) -> None:
    """One authenticated round trip: user token, Keystone validation, engine RPC."""
    auth = _password_auth(cloud.username, cloud.password, cloud.project_name)
    body, headers = _request("POST", cloud.auth_url + "/auth/tokens", auth)
    project = body["token"]["project"]["id"]
    _request("GET", f"{cloud.heat_url}/{project}/stacks", token=headers["X-Subject-Token"])
