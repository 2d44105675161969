"""stack-start: deploy the backup server stack (or a restore stack on an existing volume)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from provisioner import preflight, stacks
from provisioner.cloud import connect
from provisioner.console import err, out, print_event
from provisioner.errors import UsageError
from provisioner.parameters import (
    agent_parameters,
    generate_passcode,
    masked,
    read_passcode,
    stack_parameters,
)
from provisioner.templates import CREATE_TEMPLATE, RESTORE_TEMPLATE

HELP = "create the backup server stack and wait until it is ready"
EXAMPLES = """\
examples:
  stack-start backup --keypair mykey --flavor m1.small --image debian-12 \\
      --ssh-cidr 203.0.113.7/32
  stack-start backup --passcode-file ~/.dupstack-passcode --volume-size 500 ...
  stack-start backup2 --restore-volume 3f1c...e9 --passcode-file ~/.dupstack-passcode ...
  stack-start backup --dry-run ...       # print template and parameters, contact nothing
  stack-start backup --package-index https://pypi.mirror.internal/simple ...
  stack-start backup --wheelhouse-url "$TEMP_URL" --wheelhouse-sha256 H ...  # no internet
"""
STATUS_STYLE = {"ok": "green", "skipped": "yellow", "missing": "red", "rejected": "red"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="stack name")
    parser.add_argument("--keypair", required=True, help="existing Nova key pair for SSH")
    parser.add_argument("--flavor", required=True, help="flavor of the backup server")
    parser.add_argument("--image", required=True, help="Debian 12+ image name or ID")
    parser.add_argument(
        "--ssh-cidr", required=True, help="CIDR allowed to SSH in, e.g. 203.0.113.7/32"
    )
    parser.add_argument("--ssh-user", default="debian", help="image login user (default: debian)")
    parser.add_argument(
        "--public-network", default="public", help="external network (default: public)"
    )
    parser.add_argument(
        "--subnet-cidr",
        default="192.168.254.0/24",
        help="backup subnet; must not overlap tenant subnets (default: 192.168.254.0/24)",
    )
    parser.add_argument(
        "--volume-size", type=int, default=100, help="backup volume in GB, 10-10000 (default: 100)"
    )
    parser.add_argument("--volume-type", default="", help="Cinder volume type (default: cloud's)")
    parser.add_argument(
        "--passcode-file",
        type=Path,
        help="file holding the passcode (one line, 12+ characters); default: generate one",
    )
    parser.add_argument(
        "--restore-volume",
        metavar="VOLUME",
        help="build the server on this existing backup volume (name or ID); never formatted",
    )
    parser.add_argument(
        "-e",
        "--environment",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="Heat environment file, as for `openstack stack create -e` (repeatable)",
    )
    agent = parser.add_argument_group(
        "where the server installs its agent (default: the release the template pins, "
        "from the public PyPI)"
    )
    agent.add_argument("--agent-version", metavar="V", help="another dupstack-agent release")
    agent.add_argument("--agent-sha256", metavar="H", help="the sha256 of its wheel")
    agent.add_argument("--package-index", metavar="URL", help="a PEP 503 index (a mirror)")
    agent.add_argument("--wheelhouse-url", metavar="URL", help="a wheelhouse .tar, for no internet")
    agent.add_argument("--wheelhouse-sha256", metavar="H", help="the sha256 of that .tar")
    parser.add_argument(
        "--template", type=Path, help="use this template instead of the committed one"
    )
    parser.add_argument(
        "--timeout", type=int, default=30, metavar="MINUTES", help="give up after (default: 30)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print template and parameters; contact nothing"
    )


def run(args: argparse.Namespace) -> int:
    if args.timeout < 1:
        raise UsageError(f"--timeout {args.timeout} must be at least 1 minute")
    for path in args.environment:
        if not path.is_file():
            raise UsageError(f"environment file {path} does not exist", "check the -e path")
    template = args.template or (RESTORE_TEMPLATE if args.restore_volume else CREATE_TEMPLATE)
    if not template.is_file():
        raise UsageError(f"template {template} does not exist", "check --template")
    if args.passcode_file:
        passcode, warning = read_passcode(args.passcode_file.expanduser())
        if warning:
            err.print(f"[yellow]warning:[/] {warning}")
    else:
        passcode = generate_passcode()
    parameters = stack_parameters(
        keypair=args.keypair,
        flavor=args.flavor,
        image=args.image,
        ssh_user=args.ssh_user,
        public_network=args.public_network,
        ssh_cidr=args.ssh_cidr,
        subnet_cidr=args.subnet_cidr,
        passcode=passcode,
        volume_size=args.volume_size,
        volume_type=args.volume_type,
        restore_volume=args.restore_volume,
    ) | agent_parameters(
        version=args.agent_version,
        sha256=args.agent_sha256,
        index=args.package_index,
        wheelhouse_url=args.wheelhouse_url,
        wheelhouse_sha256=args.wheelhouse_sha256,
    )
    if args.dry_run:
        return _dry_run(args, template, parameters)

    conn = connect(args.os_cloud)
    existing = stacks.find_stack(conn, args.name)
    if existing is not None:
        return _report_existing(conn, existing)

    err.print(f"pre-flight checks for stack [bold]{args.name}[/]:")
    outcomes = []
    for check in preflight.stack_checks(
        args.keypair, args.flavor, args.image, args.public_network, args.restore_volume
    ):
        outcome = preflight.run_check(conn, check)
        style = STATUS_STYLE[outcome.status]
        detail = f" ({outcome.detail})" if outcome.detail else ""
        err.print(f"  [{style}]{outcome.status:8}[/] {check.label} {check.name!r}{detail}")
        outcomes.append(outcome)
    preflight.raise_for_outcomes(outcomes)
    volume = next((o.found for o in outcomes if o.check.option == "--restore-volume"), None)
    if volume is not None:
        parameters["volume_id"] = volume.id

    stack_id = stacks.create_stack(
        conn, args.name, template, args.environment, parameters, args.timeout
    )
    err.print(f"creating stack [bold]{args.name}[/] ({stack_id}) from {template.name}")
    if not args.passcode_file:
        _show_generated_passcode(passcode)
    state = stacks.wait_for_stack(
        conn, stack_id, args.name, "CREATE", args.timeout * 60, on_event=print_event
    )
    if state.failed:
        raise stacks.failure(
            conn, state, f"fix the cause, then `stack-delete {args.name}` and start again"
        )
    _print_ready(state)
    return 0


def _dry_run(args: argparse.Namespace, template: Path, parameters: dict) -> int:
    out.print(f"# template: {template}", markup=False)
    out.print(template.read_text(), markup=False)
    out.print("# parameters (passcode masked):", markup=False)
    out.print(yaml.safe_dump(masked(parameters), sort_keys=False), markup=False)
    for path in args.environment:
        out.print(f"# environment: {path}", markup=False)
    out.print(f"# would create stack {args.name!r}; nothing was contacted", markup=False)
    return 0


def _report_existing(conn, state: stacks.StackState) -> int:
    err.print(f"stack [bold]{state.name}[/] exists: {state.status}")
    if state.failed:
        raise stacks.failure(
            conn, state, f"delete it with `stack-delete {state.name}`, then start again"
        )
    if not state.in_progress:
        _print_ready(state)
    return 0


def _show_generated_passcode(passcode: str) -> None:
    out.print(
        "\n[bold yellow]Generated passcode (shown once, store it in your password manager):[/]"
    )
    out.print(f"    {passcode}", markup=False)
    out.print(
        "[yellow]The backup volume plus this passcode alone recover every backup; "
        "without it a new server cannot unlock the volume's keys.[/]\n"
    )


def _print_ready(state: stacks.StackState) -> None:
    outputs = state.outputs
    out.print(f"\n[bold green]Backup server {state.name} is ready.[/]")
    out.print(f"  floating IP  {outputs.get('floating_ip')}", markup=False)
    out.print(f"  ssh          {outputs.get('ssh_command')}", markup=False)
    out.print(
        f"  volume       {outputs.get('volume_id')} (kept when the stack is deleted)", markup=False
    )
    out.print(f"  subnet       {outputs.get('subnet_cidr')}", markup=False)
    out.print("Next steps:")
    out.print(
        f"  stack-connect {state.name} SUBNET...   let tenant subnets reach the server",
        markup=False,
    )
    out.print(f"  {outputs.get('ssh_command')} sudo dupctl status", markup=False)
