"""The dupctl commands, in the order --help lists them: one module per command.

A module has a docstring, HELP (its line in the parent's --help), EXAMPLES (its epilog),
add_arguments(parser) and run(args, paths) -> exit code; DESCRIPTION (the paragraph of its
--help) and FORMATTER when it has them. `host` and `schedule` only pick an ACTION module.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from types import ModuleType

from agent.commands.common import HelpFormatter


@dataclass(frozen=True)
class Group:
    """A command that only picks an ACTION, each a command module (`dupctl host add`)."""

    help: str
    examples: str
    actions: dict[str, str]  # ACTION: its module's name in agent/commands
    description: str | None = None
    formatter: type[argparse.HelpFormatter] = HelpFormatter


HOST = Group(
    help="tenant hosts to back up: add, list, remove",
    examples="""\
examples:
  dupctl host add web1 --address 10.77.0.11 --server-address 10.77.0.10
  dupctl host list
  dupctl host remove web1
""",
    actions={"add": "host_add", "list": "host_list", "remove": "host_remove"},
)
SCHEDULE = Group(
    help="the tenant hosts' cron jobs: show, apply",
    description=(
        "Each host's `schedule:` (inventory) as lines of /etc/cron.d/dupstack-hosts; "
        "H: a value picked by the host's name (docs/dupctl.md)."
    ),
    examples="""\
examples:
  dupctl schedule show
  dupctl schedule show --json
  # in /etc/duplicity/dupstack.yaml: web1 at 23:H, never pruned by cron
  #   hosts: {web1: {address: 10.0.0.5, schedule: {backup: 'H 23 * * *', prune: null}}}
  dupctl schedule apply
""",
    actions={"show": "schedule_show", "apply": "schedule_apply"},
    # As it always was: the description is printed as one line, not filled.
    formatter=argparse.RawDescriptionHelpFormatter,
)
NOTIFY = Group(
    help="notifications: a test message; hosts gone stale",
    description="Who is told is the inventory's `notifications:` (docs/notifications.md).",
    examples="""\
examples:
  dupctl notify test
  dupctl notify stale
  dupctl notify stale --json
""",
    actions={"test": "notify_test", "stale": "notify_stale"},
)
OFFSITE = Group(
    help="offsite copies (S3 incl. Glacier and Deep Archive, Swift): push, status, plan, prune",
    description="Copies of every host's sealed sets on the inventory's offsite.targets "
    "(docs/offsite.md); restore and list read them with --from TARGET.",
    examples="""\
examples:
  dupctl offsite push
  dupctl offsite status
  dupctl offsite plan --files 10000000 --file-size 1KiB --volsize 1024 --storage-class DEEP_ARCHIVE
  dupctl restore web1 --from glacier --path /etc/hosts --to /root/r --thaw bulk
""",
    actions={
        "push": "offsite_push",
        "status": "offsite_status",
        "plan": "offsite_plan",
        "prune": "offsite_prune",
    },
)
COMMANDS: dict[str, str | Group] = {
    "init": "init",
    "host": HOST,
    "passphrase": "passphrase",
    "backup": "backup",
    "status": "status",
    "sets": "sets",
    "list": "list_files",
    "restore": "restore",
    "verify": "verify",
    "drill": "drill",
    "metrics": "metrics",
    "prune": "prune",
    "schedule": SCHEDULE,
    "notify": NOTIFY,
    "offsite": OFFSITE,
    "upgrade": "upgrade",
}


def load(module: str) -> ModuleType:
    """The command module `module` of agent/commands, imported only now: each pulls in its
    action's dependencies, and a run of one command should not pay for all the others'."""
    return importlib.import_module(f"{__name__}.{module}")
