"""stack-status: show the stack's state, outputs and resources."""

from __future__ import annotations

import argparse
import json

from openstack.orchestration.v1.stack import Stack

from provisioner import stacks
from provisioner.cloud import cloud_errors, connect
from provisioner.console import add_plain_row, out, plain_table

HELP = "show the state, outputs and resources of a stack"
EXAMPLES = """\
examples:
  stack-status backup
  stack-status backup --json | jq -r .outputs.floating_ip
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="stack name")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    conn = connect(args.os_cloud)
    state = stacks.require_stack(conn, args.name)
    with cloud_errors(f"reading resources of stack {args.name}"):
        stack = Stack(id=state.id, name=state.name)
        resources = [
            {
                "name": res.name,
                "type": res.resource_type,
                "status": res.status,
                "reason": " ".join((res.status_reason or "").split()),
                "physical_id": res.physical_resource_id,
            }
            for res in conn.orchestration.resources(stack)
        ]
    resources.sort(key=lambda res: res["name"])
    if args.json:
        document = {
            "name": state.name,
            "id": state.id,
            "status": state.status,
            "reason": state.reason,
            "outputs": state.outputs,
            "resources": resources,
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        out.print(f"stack {state.name} ({state.id}): {state.status}", markup=False)
        if state.reason:
            out.print(f"  {state.reason}", markup=False)
        outputs = plain_table("output", "value", title="outputs")
        for key, value in sorted(state.outputs.items()):
            add_plain_row(outputs, key, value)
        out.print(outputs)
        table = plain_table("resource", "type", "status", "reason", title="resources")
        for res in resources:
            add_plain_row(table, res["name"], res["type"], res["status"], res["reason"])
        out.print(table)
    return 1 if state.failed else 0
