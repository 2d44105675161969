"""dupctl metrics: rewrite the Prometheus textfile now (every run and drill rewrites it too)."""

from __future__ import annotations

import argparse
import sys

from agent.commands.common import require_root, say
from agent.config.load import METRICS_TEXTFILE, load_inventory
from agent.paths import ServerPaths

HELP = "rewrite the Prometheus metrics file now"
DESCRIPTION = (
    "Each host's last run, last success and last drill, its sets on the volume and its "
    "quarantine, for node-exporter's textfile collector: the inventory's metrics.textfile "
    f"(default {METRICS_TEXTFILE}; null: no metrics). Read from this server's files only: "
    "no host is contacted, nothing is decrypted."
)
EXAMPLES = """\
examples:
  dupctl metrics
  dupctl metrics --print
  dupctl metrics --print | grep '^dupstack_last_success_timestamp_seconds'
  # in /etc/duplicity/dupstack.yaml: another file, or none
  #   metrics: {textfile: /var/lib/node_exporter/textfile/dupstack.prom}
  #   metrics: {textfile: null}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print", action="store_true", help="write the metrics to stdout instead of the file"
    )


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import metrics

    require_root("metrics")
    inventory = load_inventory(paths)
    if args.print:
        sys.stdout.write(metrics.render(paths, inventory))
        return 0
    file = metrics.refresh(paths, inventory)
    say(f"wrote {file}" if file else f"no metrics: metrics.textfile is null in {inventory.file}")
    return 0
