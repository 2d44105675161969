"""`dupctl verify HOST`: on the host, check its latest backup (and with compare_data, compare
it with the host's files); duplicity fetches the sets from its chroot over SFTP."""

from __future__ import annotations

from collections.abc import Callable

from agent import remote
from agent.duplicity.verify import verify_command
from agent.errors import BackupDiffers
from agent.execute import ANY_EXIT
from agent.host import open_host
from agent.paths import ServerPaths
from agent.times import check_time

DIFFERENCE = "Difference found: "


def verify(
    paths: ServerPaths,
    ssh: remote.Ssh,
    name: str,
    *,
    compare_data: bool,
    time: str | None,
    say: Callable[[str], None],
) -> None:
    """`say` each difference and duplicity's summary; BackupDiffers if there are any,
    BackupDamaged if a file of the backup does not match its manifest."""
    time = check_time(time)
    sets = open_host(paths, name)
    argv = verify_command(sets.on_host, sets.selection, compare_data=compare_data, time=time)
    with remote.session(ssh, sets.host) as host:
        sets.private_caches(host)
        done = host.run(argv, secret=sets.passphrase, ok_codes=ANY_EXIT, stable=True)
    lines = done.stdout.splitlines()
    differences = [line.removeprefix(DIFFERENCE) for line in lines if line.startswith(DIFFERENCE)]
    for line in differences:
        say(f"  {line}")
    if done.exit_code == 1 and differences:
        raise BackupDiffers(
            f"{name}: {len(differences)} difference(s) between its backup and its files",
            hint="expected for files changed since the backup; otherwise restore them",
        )
    sets.check(done)
    say(next((line for line in lines if line.startswith("Verify complete")), "verified"))
