"""The one place that reaches the backup server: the user's own `ssh` client, so their
~/.ssh/config, agent, known_hosts and jump hosts apply as for any other login.

Secrets travel on ssh's stdin only, never in argv; `sudo -n` never prompts, so a password
prompt cannot swallow that stdin.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import DupstackError, ServerError, Timeout
from provisioner.stacks import StackState

TIMEOUT_SECONDS = 120
CONNECT_TIMEOUT = "ConnectTimeout=20"
SSH_FAILED = 255  # ssh's own exit code: it could not connect or authenticate
SED_UNREADABLE = 2  # sed: a file it cannot read (no such file)


@dataclass(frozen=True)
class Server:
    """Where and how to log in to the backup server."""

    destination: str  # user@address, from the stack's ssh_command output
    identity: Path | None = None

    def __str__(self) -> str:
        return self.destination

    @classmethod
    def of_stack(cls, state: StackState, identity: Path | None) -> Server:
        """The login the stack reports (its ssh_command output: `ssh USER@ADDRESS`)."""
        words = shlex.split(state.outputs.get("ssh_command") or "")
        if len(words) != 2 or words[0] != "ssh" or words[1].startswith("-"):
            raise DupstackError(
                f"stack {state.name} reports no ssh login yet ({state.status})",
                f"see `stack-status {state.name}`; once it is complete, run this again",
            )
        return cls(words[1], identity)


def ssh_argv(server: Server, remote: list[str]) -> list[str]:
    """ssh running `remote` (joined and quoted for the remote shell) on the server."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise ServerError(
            "no ssh client on this machine",
            "install openssh-client, or use --to-file and copy the file yourself",
        )
    identity = ("-i", str(server.identity)) if server.identity else ()
    return [
        ssh,
        "-T",
        "-o",
        CONNECT_TIMEOUT,
        *identity,
        "--",
        server.destination,
        shlex.join(remote),
    ]


def _run(
    server: Server, remote: list[str], action: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run `remote` over ssh; ServerError when ssh itself could not get there."""
    try:
        result = subprocess.run(
            ssh_argv(server, remote),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise Timeout(
            f"{action}: ssh {server} gave no answer in {TIMEOUT_SECONDS} s",
            "check that the server is up (stack-status) and try again",
        ) from exc
    if result.returncode == SSH_FAILED:
        raise ServerError(
            f"{action}: ssh {server} failed: {_last_line(result.stderr)}",
            "the stack's --ssh-cidr must include your address and the key pair's key must be "
            "yours (--identity FILE); log in once with `ssh "
            f"{server}` to accept its host key, or use --to-file",
        )
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _refused(server: Server, action: str, result: subprocess.CompletedProcess[str]) -> ServerError:
    return ServerError(
        f"{action}: the server refused (exit {result.returncode}): {_last_line(result.stderr)}",
        f"the login user needs sudo without a password, as the image's is; check `ssh {server} "
        "sudo -n true`",
    )


def installed_value(server: Server, path: str, key: str) -> str | None:
    """The value of `key = value` in the server's root-only file `path` (read as root, only
    that line), or None when the file is not there. Only for keys that are not secret."""
    action = f"reading {key} of {path} on {server}"
    script = f"s/^{key} *= *//p"
    result = _run(server, ["sudo", "-n", "sed", "-n", script, path], action)
    if result.returncode == SED_UNREADABLE:
        return None
    if result.returncode != 0:
        raise _refused(server, action, result)
    return result.stdout.strip()


def _install_argv(path: str) -> list[str]:
    """Copy stdin to `path`: root's, mode 0600 from the start, its folders made as needed."""
    return ["sudo", "-n", "install", "-D", "-m", "0600", "-o", "root", "-g", "root",
            "/dev/stdin", path]  # fmt: skip


def install_secret_file(server: Server, path: str, content: str) -> None:
    """Write `content` (a secret) to the server's `path` through ssh's stdin."""
    action = f"installing {path} on {server}"
    result = _run(server, _install_argv(path), action, stdin=content)
    if result.returncode != 0:
        raise _refused(server, action, result)


def _remove_argv(path: str) -> list[str]:
    return ["sudo", "-n", "rm", "-f", "--", path]


def remove_file(server: Server, path: str) -> None:
    """Remove `path` from the server; a file already gone is fine."""
    action = f"removing {path} on {server}"
    result = _run(server, _remove_argv(path), action)
    if result.returncode != 0:
        raise _refused(server, action, result)


def install_command(server: Server, path: str, local: Path) -> str:
    """The command a user runs to install a local file as the server's `path` themselves."""
    remote = shlex.quote(shlex.join(_install_argv(path)))
    return f"ssh {shlex.quote(server.destination)} {remote} < {shlex.quote(str(local))}"


def remove_command(server: Server, path: str) -> str:
    """The command a user runs to remove the server's `path` themselves."""
    remote = shlex.quote(shlex.join(_remove_argv(path)))
    return f"ssh {shlex.quote(server.destination)} {remote}"
