"""agent.remote: commands on tenant hosts over SSH, against a real sshd in a test fleet.

The client side runs in this process, in a thread inside the backup server's network
namespace (Host.call); keys and known_hosts are files in the test's folder.
"""

from __future__ import annotations

import errno
import io
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import remote
from agent.errors import (
    ConfigError,
    HostAccessDenied,
    HostKeyRejected,
    HostUnreachable,
    RemoteCommandFailed,
)
from agent.execute import Result
from fleet import Fleet, Host

pytestmark = pytest.mark.root
SECRET = "pass phrase with 'quotes', $dollars; and `ticks`"


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        fleet.add_host("bs")
        fleet.add_host("web").start_sshd()
        yield fleet


@pytest.fixture(scope="module")
def keys(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> remote.Ssh:
    """The server's key, authorized on web, and web's pinned host key."""
    folder = tmp_path_factory.mktemp("ssh")
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    web = fleet.hosts["web"]
    web.authorize(Path(f"{key}.pub").read_text())
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"{web.address} {web.host_key_pub}\n")
    return remote.Ssh(key, known_hosts, connect_timeout=2)


@pytest.fixture
def web(fleet: Fleet) -> remote.Target:
    return remote.Target("web", fleet.hosts["web"].address)


@pytest.fixture
def on_bs(fleet: Fleet) -> Callable[[Callable[[], Any]], Any]:
    return fleet.hosts["bs"].call


def test_argv_arrives_exactly_as_given(on_bs, keys, web) -> None:
    argv = ["printf", "%s|", "two words", "it's", '"q"', "$HOME", "a;b", "*", ""]
    done = on_bs(lambda: remote.run(keys, web, argv))
    assert done.exit_code == 0
    assert done.stdout == 'two words|it\'s|"q"|$HOME|a;b|*||'


def test_a_secret_reaches_the_command_on_stdin_never_in_a_command_line(on_bs, keys, web) -> None:
    # On the host, while the command runs: which command lines hold $PASSPHRASE?
    scan = (
        "import glob, os; secret = os.environ['PASSPHRASE'].encode(); "
        "print(len(secret), [p for p in glob.glob('/proc/*/cmdline') "
        "if secret in open(p, 'rb').read()])"
    )
    done = on_bs(lambda: remote.run(keys, web, ["python3", "-c", scan], secret=SECRET))
    assert done.stdout.strip() == f"{len(SECRET.encode())} []"


def test_input_follows_the_secret_on_stdin(on_bs, keys, web) -> None:
    def both() -> Result:
        with remote.session(keys, web) as host:
            return host.run(["sh", "-c", 'echo "$PASSPHRASE"; cat'], secret=SECRET, input="x\ny\n")

    assert on_bs(both).stdout == f"{SECRET}\nx\ny\n"


def test_output_streams_to_the_log(on_bs, keys, web) -> None:
    log = io.StringIO()
    on_bs(lambda: remote.run(keys, web, ["sh", "-c", "echo out; echo err >&2"], log=log))
    assert sorted(log.getvalue().splitlines()) == ["err", "out"]


def test_a_failed_command_names_its_exit_code_and_last_error_line(on_bs, keys, web) -> None:
    failing = ["sh", "-c", "echo first >&2; echo 'the reason' >&2; exit 3"]
    with pytest.raises(RemoteCommandFailed) as failed:
        on_bs(lambda: remote.run(keys, web, failing))
    assert failed.value.message.startswith("web: sh -c ")
    assert failed.value.message.endswith("exited 3: the reason")


def test_a_command_that_runs_too_long_is_stopped(fleet: Fleet, on_bs, keys, web) -> None:
    """On the host too (timeout(1) there), as a run on this server is: never left running."""
    with pytest.raises(RemoteCommandFailed, match=r"web: sleep 7 timed out after 0\.5 s"):
        on_bs(lambda: remote.run(keys, web, ["sleep", "7"], timeout=0.5))
    ns = ["--ns", str(fleet.hosts["web"].keeper.pid), "--nslist", "net"]
    assert subprocess.run(["pgrep", *ns, "-f", "^sleep 7$"], capture_output=True).returncode == 1
    assert remote.remote_command(["sleep", "7"], "root", secret=False, timeout=0.5) == (
        "timeout -k 10 0.5 sleep 7"
    )


def test_a_changed_host_key_is_refused_with_both_fingerprints(
    fleet: Fleet, on_bs, keys, web, tmp_path: Path
) -> None:
    impostor = fleet.hosts["bs"]  # any other key: what a man in the middle would offer
    pins = tmp_path / "known_hosts"
    pins.write_text(f"{web.address} {impostor.host_key_pub}\n")
    wrong = remote.Ssh(keys.key_file, pins, connect_timeout=2)
    with pytest.raises(HostKeyRejected) as refused:
        on_bs(lambda: remote.run(wrong, web, ["touch", "/tmp/reached"]))
    offered = remote.parse_public_key(fleet.hosts["web"].host_key_pub).fingerprint
    expected = remote.parse_public_key(pins.read_text()).fingerprint
    assert f"offered SSH host key {offered}, but {expected} is pinned" in refused.value.message
    assert "dupctl host add web --address" in refused.value.hint
    assert "--host-key FILE" in refused.value.hint
    assert not fleet.hosts["web"].path("/tmp/reached").exists()
    assert pins.read_text() == f"{web.address} {impostor.host_key_pub}\n"


def test_an_unpinned_host_is_never_trusted(on_bs, keys, web, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.touch()
    with pytest.raises(HostKeyRejected, match="no SSH host key is pinned for web"):
        on_bs(lambda: remote.run(remote.Ssh(keys.key_file, empty), web, ["true"]))
    assert empty.read_text() == ""


def test_a_refused_key_names_the_key_to_authorize(on_bs, keys, web, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
    stranger = remote.Ssh(other, keys.known_hosts, connect_timeout=2)
    with pytest.raises(HostAccessDenied) as denied:
        on_bs(lambda: remote.run(stranger, web, ["true"]))
    assert "web" in denied.value.message
    assert stranger.public_key in denied.value.hint


def test_a_pin_of_a_key_type_the_host_no_longer_offers_is_a_key_problem(
    fleet: Fleet, on_bs, keys, web, tmp_path: Path
) -> None:
    """web's sshd has only an ed25519 key; an ECDSA key pinned for it (a host whose sshd
    keys were changed) is told as the pin it is, with both keys, not as a host that is down."""
    other = tmp_path / "ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", other], check=True)
    pins = tmp_path / "known_hosts"
    pins.write_text(f"{web.address} {Path(f'{other}.pub').read_text()}")
    with pytest.raises(HostKeyRejected) as rejected:
        on_bs(lambda: remote.run(remote.Ssh(keys.key_file, pins, 2), web, ["true"]))
    offered = remote.parse_public_key(fleet.hosts["web"].host_key_pub).fingerprint
    assert f"offered SSH host key {offered}" in rejected.value.message
    assert "--host-key FILE" in rejected.value.hint


@pytest.mark.parametrize("problem", ["missing", "passphrase", "not a key"])
def test_this_servers_own_key_problem_is_told_as_its_own(
    on_bs, keys, web, tmp_path: Path, problem: str
) -> None:
    """Before any connection: never "web is unreachable" nor "web refused the key"."""
    key = tmp_path / "id_ed25519"
    if problem == "passphrase":
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", key], check=True)
    elif problem == "not a key":
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ncut short\n")
    with pytest.raises(ConfigError) as failed:
        on_bs(lambda: remote.run(remote.Ssh(key, keys.known_hosts, 2), web, ["true"]))
    assert f"this server's SSH key {key}" in failed.value.message
    expected = {"missing": "cannot be read", "passphrase": "passphrase-protected"}
    assert expected.get(problem, "not a private key") in failed.value.message
    assert "web" not in failed.value.message


def test_a_connection_lost_mid_command_is_told_as_lost(fleet: Fleet, on_bs, keys, web) -> None:
    """The session's sshd dies while the command runs: a clear error, never a hang."""
    host = fleet.hosts["web"]
    ns = ["--ns", str(host.keeper.pid), "--nslist", "net"]
    outcome: dict[str, BaseException] = {}

    def long_command() -> None:
        try:
            on_bs(lambda: remote.run(keys, web, ["sleep", "60"]))
        except BaseException as error:
            outcome["error"] = error

    runner = threading.Thread(target=long_command)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pgrep", *ns, "-f", "^sleep 60$"], capture_output=True).returncode:
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        assert host.sshd is not None
        subprocess.run(["pkill", "-P", str(host.sshd.pid)], check=True)  # its connections
        runner.join(timeout=30)
        assert not runner.is_alive(), "the run hung on a lost connection"
    finally:
        subprocess.run(["pkill", *ns, "-f", "^sleep 60$"], check=False)
    error = outcome.get("error")
    assert isinstance(error, RemoteCommandFailed), repr(error)
    assert "web: sleep 60: the SSH connection was lost" in error.message
    assert error.hint == "check that web is up, then rerun"


def test_sessions_send_each_command_at_once(on_bs, keys, web) -> None:
    """TCP_NODELAY on the session's socket: a command's few small packets are not held for
    the peer's delayed ACK (the latency itself is make bench's to measure)."""

    def nodelay() -> int:
        with remote.session(keys, web) as host:
            transport = host.client.get_transport()
            assert transport is not None
            return transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    assert on_bs(nodelay) == 1


def _within(seconds: float, function: Callable[[], Any]) -> Any:
    """`function()`, which must end within `seconds` (a hang fails the test, not the run)."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:
            outcome["error"] = error

    runner = threading.Thread(target=call, daemon=True)
    runner.start()
    runner.join(seconds)
    assert not runner.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_much_output_on_both_streams_arrives_whole_with_split_characters(on_bs, keys, web) -> None:
    """Megabytes on stdout and stderr at once (more than the channel's window), of characters
    of two and three bytes that reads split."""
    script = "import sys; sys.stdout.write('é' * 700000); sys.stderr.write('日' * 700000)"
    done = _within(60, lambda: on_bs(lambda: remote.run(keys, web, ["python3", "-c", script])))
    assert done.stdout == "é" * 700000
    assert done.stderr == "日" * 700000


def test_a_log_that_fails_is_an_error_and_the_command_still_ends(on_bs, keys, web) -> None:
    class Full(io.StringIO):
        name = "/var/log/dupstack/web/full.log"

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    much = ["sh", "-c", "head -c 4000000 /dev/zero"]  # stalls if its output is no longer read
    with pytest.raises(RemoteCommandFailed) as failed:
        _within(60, lambda: on_bs(lambda: remote.run(keys, web, much, log=Full())))
    assert "its output could not be logged" in failed.value.message
    assert "No space left on device" in failed.value.message
    assert "full.log" in failed.value.hint


def test_a_timeout_holds_while_the_command_ignores_its_input(
    fleet: Fleet, on_bs, keys, web
) -> None:
    """More input than the pipe and the channel's window hold, never read: the timeout still
    ends the wait."""
    ns = ["--ns", str(fleet.hosts["web"].keeper.pid), "--nslist", "net"]
    big = "x" * (8 << 20)

    def ignored() -> Result:
        with remote.session(keys, web) as host:
            return host.run(["sleep", "31"], input=big, timeout=0.5)

    try:
        with pytest.raises(RemoteCommandFailed, match=r"sleep 31 timed out after 0\.5 s"):
            _within(20, lambda: on_bs(ignored))
        assert subprocess.run(["pgrep", *ns, "-f", "^sleep 31$"]).returncode == 1  # stopped
    finally:
        subprocess.run(["pkill", *ns, "-f", "^sleep 31$"], check=False)


def test_a_fed_stream_that_cannot_be_read_stops_the_command(on_bs, keys, web) -> None:
    """Never an end of input as if the stream were whole: the command is cut off, and told."""

    class Failing(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() >= 1 << 20:
                raise OSError(errno.EIO, "Input/output error")
            return super().read(size)

    def feed() -> Result:
        with remote.session(keys, web) as host:
            return host.feed(["sh", "-c", "cat > /dev/null"], Failing(bytes(4 << 20)))

    with pytest.raises(RemoteCommandFailed) as failed:
        _within(60, lambda: on_bs(feed))
    assert "its input could not be read (" in failed.value.message
    assert "Input/output error" in failed.value.message


@pytest.mark.parametrize("how", ["stop", "down"])
def test_a_dead_host_is_named_with_its_address(fleet: Fleet, on_bs, keys, how: str) -> None:
    host: Host = fleet.add_host(f"dead-{how}")
    host.start_sshd()
    pins = f"{keys.known_hosts.read_text()}{host.address} {host.host_key_pub}\n"
    keys.known_hosts.write_text(pins)
    target = remote.Target(host.name, host.address)
    getattr(host, how)()
    with pytest.raises(HostUnreachable) as dead:
        on_bs(lambda: remote.run(keys, target, ["true"]))
    assert f"host {host.name} ({host.address}:22) is unreachable" in dead.value.message
    assert f"check that {host.name} is running" in dead.value.hint
    if how == "stop":  # the cause, from the connect itself (paramiko's said "Unable to connect")
        assert dead.value.message.endswith("is unreachable: [Errno 111] Connection refused")


def test_a_non_root_user_goes_through_sudo_n() -> None:
    command = remote.remote_command(["duplicity", "--version"], "debian", secret=False)
    assert command == "sudo -n -- duplicity --version"
    with_secret = remote.remote_command(["duplicity", "x y"], "debian", secret=True)
    assert with_secret.startswith("sudo -n -- sh -c ")
    assert with_secret.endswith("sh duplicity 'x y'")


def test_paramiko_is_loaded_without_invoke() -> None:
    """invoke, which paramiko imports for ssh_config's `Match exec` alone, is not loaded with
    it (dupctl's SSHConfig is empty); whatever imports invoke itself still gets it whole."""
    probe = (
        "import sys; from agent import remote; print('invoke' in sys.modules); "
        "import invoke; print(callable(invoke.run))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.split() == ["False", "True"]
