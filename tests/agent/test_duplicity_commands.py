"""agent/duplicity: the argv it builds, and what the real duplicity 3.2.1 does with it.

The first half checks the builders as data. The second half runs them with the real
duplicity against file:// repositories in a temporary folder: two chains of a full and an
incremental each, then listing, restoring, verifying, collection-status and pruning.
The passphrase only ever travels in the environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.duplicity.backup import backup_command
from agent.duplicity.common import (
    Repository,
    Selection,
    backup_name,
    environment,
    file_url,
    filelist,
    sftp_url,
)
from agent.duplicity.exit_codes import interpret
from agent.duplicity.list_files import list_files_command
from agent.duplicity.prune import (
    cleanup_command,
    remove_all_but_n_full_command,
    remove_older_than_command,
)
from agent.duplicity.restore import restore_command
from agent.duplicity.status import (
    CollectionStatus,
    collection_status_command,
    parse_collection_status,
)
from agent.duplicity.verify import verify_command
from agent.errors import BackupDamaged, KeyMismatch
from agent.execute import Result

SFTP = Repository(
    url="sftp://dup-web1@192.168.254.10:22//backups",
    name="dupstack-web1",
    archive_dir="/var/cache/dupstack",
    identity_file="/root/.ssh/dupstack_ed25519",
    known_hosts_file="/root/.ssh/dupstack_known_hosts",
)
WEB = Selection(paths=("/etc", "/var/www"), excludes=("/var/www/cache", "**/*.tmp"))
COMMON = (
    "--name", "dupstack-web1", "--archive-dir", "/var/cache/dupstack",
    "--ssh-options=-oIdentityFile=/root/.ssh/dupstack_ed25519 "
    "-oUserKnownHostsFile=/root/.ssh/dupstack_known_hosts",
)  # fmt: skip
SELECTION = (
    "--exclude", "/var/www/cache", "--exclude", "**/*.tmp",
    "--include", "/etc", "--include", "/var/www", "--exclude", "**",
)  # fmt: skip


# --- the builders, as data -------------------------------------------------------------


def test_a_scheduled_backup_is_automatic_with_the_selection_after_the_options() -> None:
    argv = backup_command(SFTP, WEB, full_if_older_than="7D", volsize=200, statistics=False)
    assert argv == (
        "duplicity", "backup", *COMMON, "--full-if-older-than", "7D", "--volsize", "200",
        "--gpg-options=--s2k-count=65536", "--no-print-statistics", *SELECTION, "/", SFTP.url,
    )  # fmt: skip


def test_the_backup_paths_knobs_become_duplicitys_options() -> None:
    """concurrency and gpg's compression (inventory keys)."""
    argv = backup_command(SFTP, WEB, concurrency=2, compression="zlib-1")
    assert argv[argv.index("--concurrency") + 1] == "2"
    assert "--gpg-options=--compress-algo=zlib --compress-level=1" in argv
    assert "--gpg-options=--compress-algo=none" in backup_command(SFTP, WEB, compression="none")
    plain = backup_command(SFTP, WEB)  # the defaults: duplicity's and gpg's own, but the S2K
    gpg = [a for a in plain if a.startswith("--gpg-options")]
    assert "--concurrency" not in plain and gpg == ["--gpg-options=--s2k-count=65536"]
    for wrong in ("none-1", "zlib-0", "lzma", "zlib-10", "zlib-1 --homedir=/x"):
        with pytest.raises(ValueError, match="not a compression"):
            backup_command(SFTP, WEB, compression=wrong)


def test_a_forced_full_backup_has_no_age_rule() -> None:
    assert backup_command(SFTP, WEB, full=True, verbosity="notice")[:2] == ("duplicity", "full")
    assert "--verbosity" in backup_command(SFTP, WEB, verbosity="notice")
    with pytest.raises(ValueError, match="automatic"):
        backup_command(SFTP, WEB, full=True, full_if_older_than="7D")


def test_excludes_come_before_includes_and_must_lie_inside_them() -> None:
    one = Selection(paths=("/srv",))
    assert backup_command(SFTP, one)[-6:-1] == ("--include", "/srv", "--exclude", "**", "/")
    with pytest.raises(ValueError, match="not inside"):
        Selection(paths=("/var/www/html",), excludes=("/var",))  # would hide the whole path
    with pytest.raises(ValueError, match="not inside"):
        Selection(paths=("/var/www",), excludes=("/var/www/",))
    with pytest.raises(ValueError, match="not under the source root"):
        Selection(paths=("etc",))


def test_restore_names_the_path_relative_to_the_source_root() -> None:
    when = datetime(2026, 11, 22, 3, 53, 18, tzinfo=UTC)
    argv = restore_command(SFTP, "/root/restored", path="/etc/nginx", time=when)
    assert argv == (
        "duplicity", "restore", "--numeric-owner", *COMMON, "--path-to-restore=etc/nginx",
        "--time", str(int(when.timestamp())), SFTP.url, "/root/restored",
    )  # fmt: skip
    assert not any(w.startswith("--path-to-restore") for w in restore_command(SFTP, "/r", path="/"))
    # a top-level name starting with "-" stays the option's value (duplicity 3.2.1 takes a
    # separate "-x" for an option and fails: "expected one argument")
    assert "--path-to-restore=-x/y" in restore_command(SFTP, "/r", path="/-x/y")
    with pytest.raises(ValueError, match="time zone"):
        restore_command(SFTP, "/r", time=datetime(2026, 11, 22))
    with pytest.raises(ValueError, match="not under"):
        restore_command(SFTP, "/r", path="/srv/x", root="/data")


def test_list_verify_status_and_prune_commands() -> None:
    assert list_files_command(SFTP, time="3D") == (
        "duplicity", "list-current-files", *COMMON, "--time", "3D", SFTP.url,
    )  # fmt: skip
    assert verify_command(SFTP, WEB, compare_data=True) == (
        "duplicity", "verify", *COMMON, "--compare-data", *SELECTION, SFTP.url, "/",
    )  # fmt: skip
    assert collection_status_command(SFTP) == ("duplicity", "collection-status", *COMMON, SFTP.url)
    assert remove_all_but_n_full_command(SFTP, 4) == (
        "duplicity", "remove-all-but-n-full", "4", "--force", *COMMON, SFTP.url,
    )  # fmt: skip
    assert remove_older_than_command(SFTP, "6M") == (
        "duplicity", "remove-older-than", "6M", "--force", *COMMON, SFTP.url,
    )  # fmt: skip
    assert cleanup_command(SFTP) == ("duplicity", "cleanup", "--force", *COMMON, SFTP.url)
    with pytest.raises(ValueError, match="at least one"):
        remove_all_but_n_full_command(SFTP, 0)


def test_urls_and_repository_options() -> None:
    assert sftp_url("dup-web1", "192.168.254.10", 22, "/backups") == SFTP.url
    assert (
        sftp_url("dup-a", "fd00::10", 2222, "/backups") == "sftp://dup-a@[fd00::10]:2222//backups"
    )
    assert file_url("/mnt/vdb/hosts/dup-web1/backups") == "file:///mnt/vdb/hosts/dup-web1/backups"
    with pytest.raises(ValueError, match="absolute"):
        sftp_url("dup-a", "bs", 22, "backups")
    offsite = Repository(
        "s3://bucket/web1", backup_name("web1"), "/c", s3_endpoint_url="https://s3"
    )
    assert list_files_command(offsite)[2:8] == (
        "--name", "dupstack-web1", "--archive-dir", "/c", "--s3-endpoint-url", "https://s3",
    )  # fmt: skip
    with pytest.raises(ValueError, match="sftp"):
        Repository("file:///b", "n", "/c", identity_file="/k")
    with pytest.raises(ValueError, match="without spaces"):
        Repository("sftp://u@h:22//b", "n", "/c", identity_file="/my key")


def test_the_passphrase_goes_in_the_environment_with_a_stable_output() -> None:
    assert environment("s3cret") == {
        "PASSPHRASE": "s3cret", "TZ": "UTC", "LC_ALL": "C.UTF-8", "LANGUAGE": "C",
        "PYTHONIOENCODING": "utf-8:surrogateescape",
    }  # fmt: skip
    with pytest.raises(ValueError, match="non-empty"):
        environment("")


# --- the real duplicity --------------------------------------------------------------

PASSPHRASE = "correct horse battery staple"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Repo:
    """A source tree backed up by the real duplicity into a file:// repository."""

    top: Path
    source: Path
    repository: Repository
    selection: Selection
    status: CollectionStatus

    def run(
        self, argv: Sequence[str], ok: Sequence[int] = (0,), passphrase: str = PASSPHRASE
    ) -> subprocess.CompletedProcess[str]:
        assert passphrase not in " ".join(argv)
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "HOME": str(self.top / "home"),  # nothing lands in /root/.cache or ~/.gnupg
            "GNUPGHOME": str(self.top / "gnupg"),
            **environment(passphrase),
        }
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        assert done.returncode in ok, f"{argv} exited {done.returncode}:\n{done.stderr}"
        return done

    def listed(
        self, at: datetime | str | None = None, repository: Repository | None = None
    ) -> set[str]:
        """The paths list-current-files shows, relative to the source root (`asctime path`)."""
        argv = list_files_command(repository or self.repository, time=at)
        out = self.run(argv).stdout
        return {line[25:] for line in out.splitlines() if line[:3] in DAYS and line[24:25] == " "}

    def copy(self, name: str) -> Repo:
        """An independent copy of the repository and its cache (for destructive tests)."""
        for part in ("target", "cache"):
            shutil.copytree(self.top / part, self.top / name / part)
        repository = Repository(
            file_url(str(self.top / name / "target")),
            "dupstack-web1",
            str(self.top / name / "cache"),
        )
        return Repo(self.top, self.source, repository, self.selection, self.status)

    def collection_status(self) -> CollectionStatus:
        return parse_collection_status(self.run(collection_status_command(self.repository)).stdout)


DAYS = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}


def _next_second() -> None:
    """Wait for the clock's next second: duplicity names sets by the second they start."""
    now = int(time.time())
    while int(time.time()) == now:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def repo() -> Iterator[Repo]:
    """Chain 1: a full backup (3 volumes), then an incremental; chain 2: a full backup."""
    top = Path(tempfile.mkdtemp(prefix="dupstack-dup-", dir="/tmp"))  # short: gpg-agent socket
    (top / "gnupg").mkdir(mode=0o700)
    source = top / "source"
    for path, content in {
        "etc/app.conf": b"v1\n",
        "etc/blob": os.urandom(2_500_000),  # with --volsize 1: three volumes
        "var/www/html/index.html": b"<h1>hi</h1>\n",
        "var/www/html/draft.tmp": b"excluded by **/*.tmp\n",
        "var/www/cache/page": b"excluded: inside an included path\n",
        "home/user/notes": b"not included\n",
    }.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(content)
    selection = Selection(
        paths=(str(source / "etc"), str(source / "var/www")),
        excludes=(str(source / "var/www/cache"), "**/*.tmp"),
        root=str(source),
    )
    repository = Repository(file_url(str(top / "target")), backup_name("web1"), str(top / "cache"))
    built = Repo(top, source, repository, selection, CollectionStatus((), 0, 0))
    built.run(backup_command(repository, selection, full_if_older_than="7D", volsize=1))
    _next_second()  # duplicity sees a change by mtime (whole seconds) and size: v2 is as long
    (source / "etc/app.conf").write_bytes(b"v2\n")
    (source / "etc/new.conf").write_bytes(b"new\n")
    _next_second()
    built.run(backup_command(repository, selection, full_if_older_than="7D"))
    _next_second()
    built.run(backup_command(repository, selection, full=True))
    built.status = built.collection_status()
    yield built
    subprocess.run(["gpgconf", "--homedir", str(top / "gnupg"), "--kill", "gpg-agent"], check=False)
    shutil.rmtree(top, ignore_errors=True)


def test_collection_status_parses_into_chains_and_sets(repo: Repo) -> None:
    status = repo.status
    assert [chain.primary for chain in status.chains] == [False, True]
    assert [[s.kind for s in chain.sets] for chain in status.chains] == [
        ["full", "incremental"],
        ["full"],
    ]
    first, second = status.chains
    # --volsize 1 split the first full's 2.5 MB; the default 200 MiB holds the second in one.
    assert first.sets[0].volumes == 3 and first.volumes == 4 and second.volumes == 1
    times = [s.time for chain in status.chains for s in chain.sets]
    assert times == sorted(times) and len(set(times)) == 3
    assert all(t.tzinfo is UTC and abs(datetime.now(UTC) - t) < timedelta(minutes=5) for t in times)
    assert (first.start, first.end) == (first.sets[0].time, first.sets[1].time)
    assert status.last_full == status.last_backup == second.start == second.end
    assert (status.orphaned_sets, status.incomplete_sets) == (0, 0)


def test_includes_and_excludes_select_what_the_backup_holds(repo: Repo) -> None:
    assert repo.listed() == {
        ".", "etc", "etc/app.conf", "etc/blob", "etc/new.conf",
        "var", "var/www", "var/www/html", "var/www/html/index.html",
    }  # fmt: skip


def test_duplicity_applies_the_first_matching_pattern(repo: Repo) -> None:
    """Why excludes go first: after the include of /var/www, its exclude matches nothing."""
    target = file_url(str(repo.top / "include-first"))
    www = str(repo.source / "var/www")
    repo.run(
        ("duplicity", "full", "--name", "include-first", "--archive-dir", str(repo.top / "cache"),
         "--include", www, "--exclude", f"{www}/cache", "--exclude", "**", str(repo.source), target)
    )  # fmt: skip
    other = Repository(target, "include-first", str(repo.top / "cache"))
    assert "var/www/cache/page" in repo.listed(repository=other)


def test_time_selects_the_state_as_of_then_in_any_of_duplicitys_formats(repo: Repo) -> None:
    full = repo.status.chains[0].sets[0].time
    plus2 = full.astimezone(timezone(timedelta(hours=2)))
    for moment in (
        full,  # a datetime: passed as epoch seconds
        full.strftime("%Y-%m-%dT%H:%M:%SZ"),
        plus2.strftime("%Y-%m-%dT%H:%M:%S+02:00"),
        full.strftime("%Y%m%dT%H%M%SZ"),  # as in duplicity's file names
    ):
        assert "etc/new.conf" not in repo.listed(at=moment), moment
    # Before the first backup duplicity falls back to the oldest full, not to an error.
    before = repo.listed(at=full - timedelta(days=1))
    assert "etc/app.conf" in before and "etc/new.conf" not in before


def test_restore_one_path_at_an_earlier_time(repo: Repo) -> None:
    full, incremental = repo.status.chains[0].sets
    restored = repo.top / "restored-app.conf"
    path = str(repo.source / "etc/app.conf")
    repo.run(restore_command(repo.repository, str(restored), path=path, root=str(repo.source),
                             time=full.time))  # fmt: skip
    assert restored.read_bytes() == b"v1\n"
    whole = repo.top / "restored-etc"
    repo.run(restore_command(repo.repository, str(whole), path=str(repo.source / "etc"),
                             root=str(repo.source), time=incremental.time))  # fmt: skip
    assert (whole / "app.conf").read_bytes() == b"v2\n"
    assert (whole / "new.conf").read_bytes() == b"new\n"
    assert (whole / "blob").read_bytes() == (repo.source / "etc/blob").read_bytes()


def test_restore_refuses_a_non_empty_target_even_with_force(repo: Repo) -> None:
    target = repo.top / "occupied"
    target.mkdir()
    (target / "keep").write_text("mine")
    argv = restore_command(repo.repository, str(target))
    for attempt in (argv, (*argv[:2], "--force", *argv[2:])):
        done = repo.run(attempt, ok=(11,))
        assert "Will not overwrite" in done.stdout + done.stderr
    assert (target / "keep").read_text() == "mine"


def test_verify_checks_archives_and_compare_data_checks_the_files(repo: Repo) -> None:
    app = repo.source / "etc/app.conf"
    before = app.stat()
    repo.run(verify_command(repo.repository, repo.selection))
    try:
        app.write_bytes(b"changed\n")
        assert "0 difference(s)" in repo.run(verify_command(repo.repository, repo.selection)).stdout
        done = repo.run(verify_command(repo.repository, repo.selection, compare_data=True), ok=(1,))
        assert "Difference found: File etc/app.conf" in done.stdout
    finally:
        app.write_bytes(b"v2\n")
        os.utime(app, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_wrong_passphrase_exits_31(repo: Repo) -> None:
    fresh = Repository(repo.repository.url, repo.repository.name, str(repo.top / "empty-cache"))
    done = repo.run(list_files_command(fresh), ok=(31,), passphrase="wrong")
    assert "decryption failed" in done.stdout + done.stderr


def test_prune_removes_old_chains_but_never_the_active_one(repo: Repo) -> None:
    pruned = repo.copy("pruned")
    pruned.run(remove_all_but_n_full_command(pruned.repository, 1))
    assert pruned.collection_status().chains == repo.status.chains[1:]
    # "now" is later than every set, yet duplicity keeps the chain that backups extend.
    done = pruned.run(remove_older_than_command(pruned.repository, datetime.now(UTC)))
    assert "will not be deleted" in done.stdout
    assert pruned.collection_status().chains == repo.status.chains[1:]


def test_cleanup_removes_sets_left_without_their_full(repo: Repo) -> None:
    damaged = repo.copy("damaged")
    stamp = repo.status.chains[0].start.strftime("%Y%m%dT%H%M%SZ")
    target = Path(damaged.repository.url.removeprefix("file://"))
    for part in (target, Path(damaged.repository.archive_dir) / "dupstack-web1"):
        for file in part.glob(f"duplicity-full*.{stamp}.*"):
            file.unlink()
    status = damaged.collection_status()
    assert (len(status.chains), status.orphaned_sets) == (1, 1)
    damaged.run(cleanup_command(damaged.repository))
    status = damaged.collection_status()
    assert (status.chains, status.orphaned_sets) == (repo.status.chains[1:], 0)


def test_lost_volumes_show_in_the_counts_or_as_a_chain_without_its_full(repo: Repo) -> None:
    damaged = repo.copy("lost-volumes")
    stamp = repo.status.chains[0].start.strftime("%Y%m%dT%H%M%SZ")
    target = Path(damaged.repository.url.removeprefix("file://"))
    # One volume of three lost: only the count tells, not the incomplete sets.
    (target / f"duplicity-full.{stamp}.vol2.difftar.gpg").unlink()
    status = damaged.collection_status()
    assert status.chains[0].sets[0].volumes == 2 and status.incomplete_sets == 0
    # Every volume lost: duplicity lists the chain without its full set's row.
    for volume in target.glob(f"duplicity-full.{stamp}.vol*.difftar.gpg"):
        volume.unlink()
    first, second = damaged.collection_status().chains
    assert not first.has_full and [s.kind for s in first.sets] == ["incremental"]
    assert second.has_full


def test_an_empty_repository_has_no_chains_and_other_output_is_refused(repo: Repo) -> None:
    (repo.top / "empty").mkdir()
    empty = Repository(file_url(str(repo.top / "empty")), "empty", str(repo.top / "cache"))
    status = parse_collection_status(repo.run(collection_status_command(empty)).stdout)
    assert status == CollectionStatus((), orphaned_sets=0, incomplete_sets=0)
    assert status.last_full is None and status.last_backup is None
    with pytest.raises(ValueError, match="not the output"):
        parse_collection_status("Last full backup date: none\n")


@pytest.mark.parametrize(
    ("output", "code", "expected"),
    [
        (  # a sealed manifest emptied on the volume, read into the host's cache
            "Copying duplicity-full.T.manifest.gpg to local cache.\nCopying duplicity-inc.T.to."
            "U.manifest.gpg to local cache.\nGPGError: GPG Failed, see log below:\n===== Begin "
            "GnuPG log =====\ngpg: decrypt_message failed: Unknown system error\n",
            31,
            BackupDamaged,
        ),
        (  # the same, named by duplicity
            "Error processing remote file (duplicity-full.T.manifest.gpg):\ngpg: no valid "
            "OpenPGP data found.\n",
            1,
            BackupDamaged,
        ),
        (  # a wrong passphrase: gpg says so, whatever duplicity was copying
            "Copying duplicity-full.T.manifest.gpg to local cache.\ngpg: decryption failed: Bad "
            "session key\n",
            31,
            KeyMismatch,
        ),
        ("GPGError: GPG Failed\n", 31, KeyMismatch),  # 31 with nothing else said
    ],
)
def test_a_damaged_file_is_told_from_a_wrong_passphrase(
    output: str, code: int, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as raised:
        interpret("web1", Result(code, "", output), passphrase_file=Path("/etc/p"))
    if expected is BackupDamaged:
        assert "web1's backup is damaged: duplicity-" in str(raised.value.message)
        assert "cannot be read" in raised.value.message


AWKWARD_NAMES = [b"a[1].txt", b"*star", b"?q", b"#hash", b"- dash", b"+ plus", b"'quoted'",
                 b" lead", b"trail ", b"x**y", b"-", b"\xff\xfe latin"]  # fmt: skip


def test_a_filelist_of_awkward_names_restores_exactly_those(tmp_path: Path) -> None:
    """Names duplicity's filelist would read as globs, comments, modifiers, quotes or trim:
    each restored through filelist(), and nothing else with it (a neighbour that the
    glob `*star` or `?q` would match is left out)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in [*AWKWARD_NAMES, b"Xstar", b"xq", b"hash", b"dash", b"quoted", b"lead", b"trail"]:
        (source / os.fsdecode(name)).write_bytes(name + b"\n")
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    repository = Repository(file_url(str(tmp_path / "target")), "awkward", str(tmp_path / "cache"))
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "GNUPGHOME": str(gnupg), **environment("awkward names")}  # fmt: skip
    try:
        run = lambda argv: subprocess.run(argv, env=env, capture_output=True, check=False)  # noqa: E731
        run(backup_command(repository, Selection(paths=(str(source),), root=str(source))))
        listed = tmp_path / "list"
        listed.write_bytes(filelist(AWKWARD_NAMES))
        restored = tmp_path / "restored"
        done = run(
            restore_command(repository, str(restored), root=str(source), filelist=str(listed))
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert sorted(os.listdir(os.fsencode(restored))) == sorted(AWKWARD_NAMES)
        for name in AWKWARD_NAMES:
            assert (restored / os.fsdecode(name)).read_bytes() == name + b"\n"
    finally:
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"], check=False)
