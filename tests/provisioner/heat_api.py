"""Shared pieces of the HTTP-level provisioner tests: the recorded stack's IDs, the Heat
lookups every command starts with, and running the CLI in-process."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner import cli

STACK = "backup"
STACK_ID = "f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
ROUTER_ID = "d2a3b4c5-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
SECURITY_GROUP_ID = "9c8b7a6f-5e4d-4c3b-8a2f-1e0d9c8b7a6f"
VOLUME_ID = "3f1c9a2e-5b7d-4c8e-9f0a-1b2c3d4e5fe9"
BACKUP_CIDR = "192.168.254.0/24"
BACKUP_SUBNET_ID = "b7a6c5d4-e3f2-4a1b-9c8d-7e6f5a4b3c2d"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `dupstack ARGV` in-process: (exit code, stdout, stderr)."""
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expect_stack(cloud, body: dict[str, Any]) -> None:
    """find_stack by name (Heat redirects to /stacks/NAME/ID), then the full stack by ID."""
    canonical = cloud.url("orchestration", "stacks", STACK, STACK_ID)
    for lookup in (STACK, STACK_ID):
        cloud.register(
            {
                "method": "GET",
                "uri": cloud.url("orchestration", "stacks", lookup),
                "status_code": 302,
                "headers": {"Location": canonical},
            },
            {"method": "GET", "uri": canonical, "json": body},
        )
