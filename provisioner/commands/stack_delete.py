"""stack-delete: delete the stack; the backup volume is kept unless --delete-volume."""

from __future__ import annotations

import argparse
import sys

from provisioner import stacks, subnets
from provisioner.cloud import cloud_errors, connect, has_service
from provisioner.console import err, out, print_event
from provisioner.errors import CloudError, UsageError

HELP = "delete the stack, keeping the backup volume"
EXAMPLES = """\
examples:
  stack-delete backup                       # the backup volume is kept
  stack-delete backup --delete-volume       # asks you to type the stack name
  stack-delete backup --delete-volume --yes # scripts: no question
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="stack name")
    parser.add_argument(
        "--delete-volume",
        action="store_true",
        help="also delete the backup volume and every backup on it (asks first)",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    parser.add_argument(
        "--timeout", type=int, default=30, metavar="MINUTES", help="give up after (default: 30)"
    )


def _confirm_volume_deletion(name: str, volume_id: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError(
            "refusing to delete the backup volume without confirmation: nothing was deleted",
            "run it on a terminal to confirm, or add --yes",
        )
    err.print(
        f"[bold red]This deletes backup volume {volume_id} and every backup on it.[/]\n"
        f"Type the stack name ({name}) to confirm: ",
        end="",
    )
    if sys.stdin.readline().strip() != name:
        raise UsageError("not confirmed: nothing was deleted", "type the stack name exactly")


def _disconnect_tenant_subnets(conn, state: stacks.StackState) -> None:
    """Undo stack-connect first: Neutron cannot delete a router that still has interfaces,
    and the tenant subnets' host routes would point at nothing."""
    outputs = state.outputs
    if not (outputs.get("router_id") and has_service(conn, "network")):
        return
    try:
        side = subnets.backup_side(state.name, outputs)
    except UsageError:
        err.print(
            f"[yellow]warning:[/] stack {state.name} lacks the outputs to undo stack-connect; "
            "if Heat cannot delete the router, remove its tenant interfaces by hand"
        )
        return
    for subnet_id in subnets.connected_subnets(conn, side, outputs.get("subnet_id", "")):
        result = subnets.detach_subnet(conn, side, subnet_id)
        err.print(f"disconnected {result.subnet}: {'; '.join(result.changes)}", markup=False)


def run(args: argparse.Namespace) -> int:
    conn = connect(args.os_cloud)
    state = stacks.require_stack(conn, args.name)
    volume_id = state.outputs.get("volume_id")
    if args.delete_volume:
        if not volume_id:
            raise UsageError(
                f"stack {args.name} reports no volume_id output; cannot tell which volume",
                "delete the volume by hand with `openstack volume delete`",
            )
        if not has_service(conn, "block-storage"):
            raise CloudError(
                "the cloud's catalog has no block-storage service: cannot delete the volume",
                "nothing was deleted; run without --delete-volume to keep the volume",
            )
        if not args.yes:
            _confirm_volume_deletion(args.name, volume_id)
    _disconnect_tenant_subnets(conn, state)
    stacks.delete_stack(conn, state)
    err.print(f"deleting stack [bold]{args.name}[/] ({state.id})")
    final = stacks.wait_for_stack(
        conn, state.id, args.name, "DELETE", args.timeout * 60, on_event=print_event
    )
    if final.failed:
        raise stacks.failure(conn, final, f"see `stack-status {args.name}`, then try again")
    out.print(f"stack {args.name} deleted", markup=False)
    if not volume_id:
        return 0
    if args.delete_volume:
        with cloud_errors(f"deleting volume {volume_id}"):
            conn.block_storage.delete_volume(volume_id)
        out.print(f"backup volume {volume_id} deleted", markup=False)
    else:
        out.print(f"backup volume {volume_id} kept; to bring the server back on it:", markup=False)
        out.print(f"  stack-start {args.name} --restore-volume {volume_id} ...", markup=False)
    return 0
