"""The one place where dupctl runs commands on tenant hosts, over SSH (paramiko).

The server logs in with its own key, and only to hosts whose SSH host key is pinned in its
known_hosts file: paramiko's RejectPolicy refuses unknown keys, a changed key is refused
with both fingerprints (AutoAddPolicy, which trusts any key, is never used).
Commands are argv lists quoted with shlex.join; a secret travels on stdin and becomes
$PASSPHRASE in the command's environment, so it never appears in any command line. A Session
is a Runner (agent/execute.py): the same call and the same Result as a run on this server.
paramiko's SSHClient logs in; each command runs on a channel of its own (Session). fabric is
not used: once commands ran on channels, its Connection only wrapped that login, and its
import (with invoke's) was ~0.1 s of every run's start.
"""

from __future__ import annotations

import base64
import codecs
import errno
import io
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from agent.duplicity.common import STABLE_OUTPUT_ENV
from agent.errors import (
    ConfigError,
    HostAccessDenied,
    HostKeyRejected,
    HostUnreachable,
    RemoteCommandFailed,
    UsageError,
)
from agent.execute import Result
from agent.files import is_utf8
from agent.paths import ServerPaths

# paramiko imports invoke with itself, only for ssh_config's `Match exec`, which dupctl never
# reads (its SSHConfig is empty): ~0.1 s of every run's start. Hidden while paramiko loads,
# which then keeps None for it; anything else that imports invoke still gets it.
_HIDE_INVOKE = "invoke" not in sys.modules
if _HIDE_INVOKE:
    sys.modules["invoke"] = None  # type: ignore[assignment]
try:
    import paramiko
    from paramiko.hostkeys import HostKeys
finally:
    if _HIDE_INVOKE:
        del sys.modules["invoke"]

logger = logging.getLogger(__name__)

# Reads the first stdin line into PASSPHRASE, then runs "$@" (the argv) with it exported,
# under umask 077: what it writes (duplicity's cache of plaintext manifests and signatures,
# which name every file and can reveal small ones) is root's alone.
EXPORT_FIRST_LINE = 'umask 077 && IFS= read -r PASSPHRASE && export PASSPHRASE && exec "$@"'


# After a command's timeout: seconds from timeout(1)'s TERM to its KILL on the host, and this
# side's wait for the host to have stopped it before it gives up on the channel.
KILL_AFTER = 10.0
TIMED_OUT = (124, 137)  # timeout(1): the command was stopped (137: by the KILL)
KEEPALIVE = 60  # seconds of silence on a session before paramiko asks the host whether it is there

# Runs the argv given as base64 words: a name with bytes that are not UTF-8, which the SSH
# channel (text) cannot carry, reaches the host exact.
BYTES_EXEC = (
    "import base64, os, sys; argv = [base64.b64decode(w) for w in sys.argv[1:]]; "
    "os.execvp(argv[0], argv)"
)


class HostAddress(Protocol):
    """How to reach a host (agent.config's HostConfig is one)."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class Target:
    """A host to reach, when there is no inventory entry (yet)."""

    name: str
    address: str
    user: str = "root"
    port: int = 22


@dataclass(frozen=True)
class Ssh:
    """The server's side: its private key and its pinned host keys."""

    key_file: Path
    known_hosts: Path
    connect_timeout: float = 10.0

    @classmethod
    def of_server(cls, paths: ServerPaths, connect_timeout: float = 10.0) -> Ssh:
        ssh_dir = paths.etc_dir / "ssh"
        return cls(ssh_dir / "id_ed25519", ssh_dir / "known_hosts", connect_timeout)

    @property
    def public_key(self) -> str:
        """The public key line to authorize on hosts (or how to get it)."""
        try:
            return Path(f"{self.key_file}.pub").read_text().strip()
        except OSError:
            return f"the output of: ssh-keygen -y -f {self.key_file}"


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH and paramiko name a host in known_hosts."""
    return address if port == 22 else f"[{address}]:{port}"


def parse_public_key(text: str) -> paramiko.PKey:
    """A key from an OpenSSH public key line (`TYPE BASE64 [comment]`) or a known_hosts line."""
    fields = text.split()
    for index, field in enumerate(fields[:-1]):
        if field.startswith(("ssh-", "ecdsa-", "sk-")):
            try:
                return paramiko.PKey.from_type_string(field, base64.b64decode(fields[index + 1]))
            except (ValueError, paramiko.SSHException):
                break
    raise UsageError(f"not an SSH public key: {text.strip()[:60]!r}")


def public_key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def pinned_key(ssh: Ssh, host: HostAddress) -> paramiko.PKey | None:
    """The host key pinned for `host`, if any."""
    if not ssh.known_hosts.exists():
        return None
    keys = HostKeys(str(ssh.known_hosts)).lookup(known_hosts_name(host.address, host.port))
    return next(iter(keys.values()), None) if keys else None


def pinned_lines(known_hosts: str, host: HostAddress, key: paramiko.PKey | None) -> str:
    """`known_hosts` text with `host`'s entries replaced by `key` (or removed if None)."""
    name = known_hosts_name(host.address, host.port)
    lines = [
        line
        for line in known_hosts.splitlines()
        if line.strip() and name not in line.split(maxsplit=1)[0].split(",")
    ]
    if key is not None:
        lines.append(f"{name} {public_key_line(key)}")
    return "".join(f"{line}\n" for line in lines)


def scan_host_key(host: HostAddress, timeout: float) -> paramiko.PKey:
    """The host key `host` offers (for a first-seen pin); nothing is authenticated."""
    try:
        with _dial(host, timeout) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=timeout)
                return transport.get_remote_server_key()
            finally:
                transport.close()
    except (OSError, EOFError, paramiko.SSHException) as error:
        raise _unreachable(host, error) from error


def remote_command(
    argv: Sequence[str],
    user: str,
    secret: bool,
    stable: bool = False,
    timeout: float | None = None,
) -> str:
    """The command line sent to the host: shlex-quoted argv (under timeout(1) for a
    `timeout`: the host stops it, TERM then KILL, as a run here is stopped; through env(1)
    for a `stable` output: UTC, English), the secret read from stdin first, via sudo -n
    unless root. An argv with bytes that are not UTF-8 (surrogate escapes) goes as base64
    (BYTES_EXEC)."""
    if not all(word.isascii() or is_utf8(word) for word in argv):
        words = (base64.b64encode(os.fsencode(word)).decode() for word in argv)
        argv = ("python3", "-c", BYTES_EXEC, *words)
    if timeout is not None:
        argv = ("timeout", "-k", f"{KILL_AFTER:g}", f"{timeout:g}", *argv)
    if stable:
        argv = ("env", *(f"{name}={value}" for name, value in STABLE_OUTPUT_ENV.items()), *argv)
    command = ["sh", "-c", EXPORT_FIRST_LINE, "sh", *argv] if secret else list(argv)
    return shlex.join(command if user == "root" else ["sudo", "-n", "--", *command])


class Session:
    """An open SSH connection to one host. Each command runs on a paramiko channel of its
    own (fabric's `run`, invoke's runner, polled its streams, ~20 ms a command more, and
    quietly reconnected a lost connection); a lost connection is an error here."""

    def __init__(self, host: HostAddress, client: paramiko.SSHClient) -> None:
        self.host = host
        self.client = client

    def run(
        self,
        argv: Sequence[str],
        *,
        secret: str | None = None,
        input: str | None = None,
        log: IO[str] | None = None,
        timeout: float | None = None,
        ok_codes: Sequence[int] = (0,),
        stable: bool = False,
    ) -> Result:
        """Run `argv` on the host; `secret` reaches it as $PASSPHRASE, `input` as stdin after it.

        Output goes to `log` as it comes. Raises RemoteCommandFailed unless the exit code is
        in `ok_codes` (-1: killed by a signal), or if the command outlives `timeout`, the
        connection is lost or its output cannot be logged; HostAccessDenied when sudo wants a
        password.
        """
        command = remote_command(argv, self.host.user, secret is not None, stable, timeout)
        logger.debug("run on %s: %s", self.host.name, command)
        stdin = (f"{secret}\n" if secret is not None else "") + (input or "")
        channel = self._channel()
        out, err, feeder = _Output(log), _Output(log), _Input(io.BytesIO(stdin.encode()))
        started = time.monotonic()
        code = self._wait(channel, command, argv, timeout,
                          (out.reader(channel.recv), err.reader(channel.recv_stderr),
                           feeder.writer(channel)))  # fmt: skip
        if timeout is not None and code in TIMED_OUT and time.monotonic() - started >= timeout:
            raise self._timed_out(argv, timeout)
        result = Result(code, out.text(), err.text())
        if result.exit_code not in ok_codes:
            last = result.stderr.strip().splitlines()[-1:] or [""]
            if self.host.user != "root" and "sudo: a password is required" in last[0]:
                raise HostAccessDenied(
                    f"{self.host.name}: user {self.host.user} may not use sudo without a password",
                    hint=f"give {self.host.user} passwordless sudo on {self.host.name}, "
                    "or use --user root",
                )
            raise self._failed(argv, result.exit_code, last[0])
        if unlogged := out.log_error or err.log_error:
            raise RemoteCommandFailed(
                f"{self.host.name}: {shlex.join(argv)}: its output could not be logged "
                f"({unlogged})",
                hint=f"make room for the log ({getattr(log, 'name', 'its file')}), then rerun",
            )
        return result

    def feed(
        self, argv: Sequence[str], source: IO[bytes], ok_codes: Sequence[int] = (0,)
    ) -> Result:
        """Run `argv` on the host with the bytes of `source` as its stdin (a tar stream, too
        large and not text); RemoteCommandFailed as for run, and if `source` cannot be read
        to its end (the command's stdin is cut, never ended as if whole)."""
        command = remote_command(argv, self.host.user, secret=False)
        logger.debug("run on %s, fed: %s", self.host.name, command)
        channel = self._channel()
        channel.set_combine_stderr(True)
        out, feeder = _Output(None), _Input(source)
        code = self._wait(channel, command, argv, None,
                          (out.reader(channel.recv), feeder.writer(channel)))  # fmt: skip
        if feeder.error is not None:
            raise RemoteCommandFailed(
                f"{self.host.name}: {shlex.join(argv)}: its input could not be read "
                f"({feeder.error}); the command was stopped"
            )
        said = out.text()
        if code not in ok_codes:
            last = said.strip().splitlines()[-1:] or [""]
            raise self._failed(argv, code, last[0])
        return Result(code, said, "")

    def _wait(
        self,
        channel: paramiko.Channel,
        command: str,
        argv: Sequence[str],
        timeout: float | None,
        helpers: Sequence[threading.Thread],
    ) -> int:
        """Start `command` on `channel` and its `helpers` (the threads that read its output
        and write its input); its exit code once it ended and its output was read."""
        try:
            try:
                channel.exec_command(command)
                for helper in helpers:
                    helper.start()
                # the host stops the command at `timeout` (remote_command): wait for that
                grace = None if timeout is None else timeout + KILL_AFTER + 5
                if not channel.status_event.wait(grace):
                    raise self._timed_out(argv, timeout)
                code = channel.recv_exit_status()
                for helper in helpers:
                    helper.join()
            finally:
                channel.close()  # ends any helper still reading or writing
                for helper in helpers:
                    if helper.ident is not None:
                        helper.join(timeout=5)
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise self._lost(argv, error) from error
        transport = self.client.get_transport()
        gone = (
            transport is None or transport.saved_exception is not None or not transport.is_active()
        )
        if code == -1 and gone:  # closed by the transport's end, not by the host's sshd
            raise self._lost(argv, "the host closed it, or stopped answering")
        return code

    def _channel(self) -> paramiko.Channel:
        """A new channel on the session's connection; RemoteCommandFailed if it is gone."""
        transport = self.client.get_transport()
        try:
            if transport is None:
                raise paramiko.SSHException("not connected")
            return transport.open_session()
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise RemoteCommandFailed(
                f"{self.host.name}: the SSH connection is closed ({_reason(error)})",
                hint=f"check that {self.host.name} is up, then rerun",
            ) from error

    def _timed_out(self, argv: Sequence[str], timeout: float | None) -> RemoteCommandFailed:
        return RemoteCommandFailed(
            f"{self.host.name}: {shlex.join(argv)} timed out after {timeout:g} s"
        )

    def _failed(self, argv: Sequence[str], code: int, last: str) -> RemoteCommandFailed:
        return RemoteCommandFailed(
            f"{self.host.name}: {shlex.join(argv)} exited {code}" + (f": {last}" if last else "")
        )

    def _lost(self, argv: Sequence[str], error: object) -> RemoteCommandFailed:
        return RemoteCommandFailed(
            f"{self.host.name}: {shlex.join(argv)}: the SSH connection was lost ({_reason(error)})",
            hint=f"check that {self.host.name} is up, then rerun",
        )


class _Output:
    """One of a command's output streams, read to its end as text, and logged as it comes. A
    log that fails is no longer written (its error kept for the caller), the stream still read:
    an unread stream would fill the channel's window and stall the command."""

    def __init__(self, log: IO[str] | None) -> None:
        self.log = log
        self.log_error: Exception | None = None
        self._parts: list[str] = []

    def reader(self, recv: Callable[[int], bytes]) -> threading.Thread:
        return threading.Thread(target=self._read, args=(recv,), daemon=True)

    def text(self) -> str:
        return "".join(self._parts)

    def _read(self, recv: Callable[[int], bytes]) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            data = recv(1 << 16)
            text = decoder.decode(data, final=not data)  # a character split between reads
            if text:
                self._parts.append(text)
                if self.log is not None and self.log_error is None:
                    try:
                        self.log.write(text)
                        self.log.flush()
                    except (OSError, ValueError) as error:  # ValueError: a closed file
                        self.log_error = error
            if not data:
                return


class _Input:
    """A command's stdin, written from `source` to its end, then ended; a command that ends
    without reading it all ends the writing too. If `source` fails, the channel is closed:
    the command never sees a cut stream end as if it were whole."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.error: OSError | None = None

    def writer(self, channel: paramiko.Channel) -> threading.Thread:
        return threading.Thread(target=self._write, args=(channel,), daemon=True)

    def _write(self, channel: paramiko.Channel) -> None:
        try:
            while True:
                try:
                    chunk = self.source.read(1 << 20)
                except OSError as error:
                    self.error = error
                    channel.close()
                    return
                if not chunk:
                    break
                channel.sendall(chunk)
            channel.shutdown_write()
        except (OSError, paramiko.SSHException):  # the command ended, or the connection did
            pass


@contextmanager
def session(ssh: Ssh, host: HostAddress) -> Iterator[Session]:
    """A connection to `host`, logged in with the server's key, checked against its pin."""
    pinned = pinned_key(ssh, host)
    if pinned is None:
        raise HostKeyRejected(
            f"no SSH host key is pinned for {host.name} ({host.address}:{host.port})",
            hint=f"dupctl host add {host.name} --address {host.address} pins it",
        )
    key = _server_key(ssh)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.load_host_keys(str(ssh.known_hosts))
    sock: socket.socket | None = None
    try:  # a failed login leaves paramiko's transport thread running until closed
        try:
            sock = _dial(host, ssh.connect_timeout)
            client.connect(
                host.address,
                port=host.port,
                username=host.user,
                pkey=key,
                sock=sock,
                look_for_keys=False,
                allow_agent=False,
                timeout=ssh.connect_timeout,
                banner_timeout=ssh.connect_timeout,
                auth_timeout=ssh.connect_timeout,
            )
        except paramiko.BadHostKeyException as error:
            raise _key_mismatch(host, expected=pinned, offered=error.key) from error
        except paramiko.AuthenticationException as error:
            raise HostAccessDenied(
                f"{host.name} ({host.address}) refused this server's SSH key for user {host.user}",
                hint=f"authorize this key on {host.name} (~{host.user}/.ssh/authorized_keys): "
                f"{ssh.public_key}",
            ) from error
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise _unreachable(host, error) from error
        try:
            _tune(client)
        except OSError as error:  # the host hung up right after the login
            raise _unreachable(host, error) from error
    except BaseException:
        client.close()
        if sock is not None:
            sock.close()  # when paramiko failed before its transport had it
        raise
    try:
        yield Session(host, client)
    finally:
        client.close()


def _dial(host: HostAddress, timeout: float) -> socket.socket:
    """A TCP connection to `host`, TCP_NODELAY from its first packet: each step of the SSH
    handshake and of each command is a few small packets, which Nagle's algorithm would hold
    for the peer's delayed ACK (~40 ms a step, as OpenSSH knows; a login took ~0.08 s, not
    ~0.02). OSError if it cannot be reached (paramiko's own would name no cause)."""
    sock = socket.create_connection((host.address, host.port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _tune(client: paramiko.SSHClient) -> None:
    """Keepalives: a host that vanishes during hours of a quiet duplicity run ends the run
    instead of hanging it."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise ConnectionResetError(errno.ECONNRESET, "it closed the connection after the login")
    transport.set_keepalive(KEEPALIVE)


def run(
    ssh: Ssh,
    host: HostAddress,
    argv: Sequence[str],
    *,
    secret: str | None = None,
    log: IO[str] | None = None,
    timeout: float | None = None,
) -> Result:
    """One command on `host` over a connection of its own (see Session.run)."""
    with session(ssh, host) as remote:
        return remote.run(argv, secret=secret, log=log, timeout=timeout)


def _reason(error: object) -> str:
    """What went wrong, in words: an error's text, else its type (EOFError() says nothing)."""
    return str(error) or type(error).__name__


def _server_key(ssh: Ssh) -> paramiko.PKey:
    """This server's private key, read before any connection: a missing, unreadable or
    passphrase-protected key is this server's problem, never told as the host's."""
    try:
        return paramiko.PKey.from_path(ssh.key_file)
    except (TypeError, paramiko.PasswordRequiredException) as error:  # cryptography: TypeError
        raise ConfigError(
            f"this server's SSH key {ssh.key_file} is passphrase-protected",
            hint=f"dupctl logs in unattended: remove its passphrase (ssh-keygen -p -f "
            f"{ssh.key_file}) or restore the key dupctl init made",
        ) from error
    except OSError as error:
        raise ConfigError(
            f"this server's SSH key {ssh.key_file} cannot be read ({error.strerror or error})",
            hint="dupctl init makes it; run dupctl as root",
        ) from error
    except (paramiko.SSHException, paramiko.pkey.UnknownKeyType, ValueError) as error:
        raise ConfigError(
            f"this server's SSH key {ssh.key_file} is not a private key dupctl can use "
            f"({_reason(error)})",
            hint="restore the key dupctl init made (its public half is authorized on the hosts)",
        ) from error


def _unreachable(host: HostAddress, error: BaseException) -> HostUnreachable:
    if isinstance(error, EOFError):
        reason = "it closed the connection during the SSH handshake"
    else:
        reason = _reason(error)
    return HostUnreachable(
        f"host {host.name} ({host.address}:{host.port}) is unreachable: {reason}",
        hint=f"check that {host.name} is running, that sshd listens on port {host.port} and "
        "that this server may reach it (security group); the address is in the inventory",
    )


def _key_mismatch(
    host: HostAddress, expected: paramiko.PKey, offered: paramiko.PKey
) -> HostKeyRejected:
    return HostKeyRejected(
        f"{host.name} ({host.address}:{host.port}) offered SSH host key {offered.fingerprint}, "
        f"but {expected.fingerprint} is pinned: refusing to connect",
        hint=f"if {host.name} was rebuilt, check the new key on its console, save it to FILE and "
        f"re-pin it: dupctl host add {host.name} --address {host.address} --host-key FILE; "
        "otherwise someone may be in between",
    )
