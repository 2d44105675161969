"""dupctl notify test: a test message to every URL of notifications.urls_file."""

from __future__ import annotations

import argparse

from agent.commands.common import require_root, say
from agent.paths import ServerPaths

HELP = "send a test message to every notification URL"
DESCRIPTION = (
    "Sends a test message to each apprise URL of notifications.urls_file (a root-only "
    "file, one URL per line); a line that fails is named, never its URL."
)
EXAMPLES = """\
examples:
  dupctl notify test
  # in /etc/duplicity/dupstack.yaml:
  #   notifications: {urls_file: /etc/dupstack/notify.urls, success: false, stale_after: 36h}
  # /etc/dupstack/notify.urls (chmod 600), one apprise URL per line:
  #   mailtos://alerts:APP-PASSWORD@smtp.example.com?to=ops@example.com
  #   ntfys://ntfy.example.com/dupstack-alerts
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: it tries every URL."""


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent.actions.notify import send_test

    require_root("notify test")
    delivery = send_test(paths)
    say(f"delivered to {delivery.sent} of {delivery.total} URL(s) of {delivery.file}")
    return 1 if delivery.failed else 0
