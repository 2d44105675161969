"""Heat stack operations: find, create, wait while streaming events, explain failures, delete."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openstack import connection
from openstack import exceptions as sdk_exc
from openstack.orchestration.v1.stack import Stack

from provisioner.cloud import cloud_errors
from provisioner.errors import NotFound, StackFailed, Timeout

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class StackEvent:
    """One line of a stack's progress."""

    time: str
    resource: str
    status: str
    reason: str


@dataclass(frozen=True)
class StackState:
    """What a user needs to know about a stack."""

    id: str
    name: str
    status: str
    reason: str
    outputs: dict[str, Any]

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


def _state(stack: Any) -> StackState:
    outputs = {item["output_key"]: item.get("output_value") for item in stack.outputs or []}
    return StackState(
        id=stack.id,
        name=stack.name,
        status=stack.status or "UNKNOWN",
        reason=" ".join((stack.status_reason or "").split()),
        outputs=outputs,
    )


def find_stack(conn: connection.Connection, name: str) -> StackState | None:
    """The stack called `name`, or None when there is none (deleted stacks do not count)."""
    with cloud_errors(f"looking up stack {name}"):
        try:
            stack = conn.orchestration.find_stack(name, ignore_missing=False)
        except sdk_exc.NotFoundException:
            return None
        if stack.status == "DELETE_COMPLETE":
            return None
        # find_stack may answer from a listing, which has no outputs: get the full stack.
        return _state(conn.orchestration.get_stack(stack))


def require_stack(conn: connection.Connection, name: str) -> StackState:
    """The stack called `name`; NotFound with a hint when there is none."""
    state = find_stack(conn, name)
    if state is None:
        raise NotFound(
            f"no stack named {name!r} in this project",
            f"list stacks with `openstack stack list`, or create it: stack-start {name}",
        )
    return state


def create_stack(
    conn: connection.Connection,
    name: str,
    template: Path,
    environment_files: list[Path],
    parameters: dict[str, Any],
    timeout_minutes: int,
) -> str:
    """Ask Heat to create the stack; return its id. Rollback stays off to keep failures visible."""
    with cloud_errors(f"creating stack {name}"):
        attrs = conn.orchestration.read_env_and_templates(
            template_file=str(template),
            environment_files=[str(path) for path in environment_files] or None,
        )
        stack = conn.orchestration.create_stack(
            name=name,
            parameters=parameters,
            timeout_mins=timeout_minutes,
            is_rollback_disabled=True,
            **attrs,
        )
    return stack.id


def _events(conn: connection.Connection, stack_id: str, name: str) -> list[StackEvent]:
    with cloud_errors(f"reading events of stack {name}"):
        try:
            stack = Stack(id=stack_id, name=name)
            events = list(conn.orchestration.stack_events(stack, sort_dir="asc"))
        except sdk_exc.NotFoundException:
            return []
        return [
            StackEvent(
                time=str(event.event_time or ""),
                resource=str(event.resource_name or ""),
                status=str(event.resource_status or ""),
                reason=" ".join(str(event.resource_status_reason or "").split()),
            )
            for event in events
            if event.resource_name and event.resource_name != name
        ]


def wait_for_stack(
    conn: connection.Connection,
    stack_id: str,
    name: str,
    action: str,
    timeout_seconds: float,
    on_event: Callable[[StackEvent], None],
) -> StackState:
    """Poll until the stack leaves *_IN_PROGRESS, reporting each new `action` event once."""
    deadline = time.monotonic() + timeout_seconds
    seen = 0
    while True:
        with cloud_errors(f"reading stack {name}"):
            try:
                state = _state(conn.orchestration.get_stack(stack_id))
            except sdk_exc.NotFoundException:
                # A deleted stack may vanish from the API instead of showing DELETE_COMPLETE.
                return StackState(stack_id, name, "DELETE_COMPLETE", "", {})
        events = [e for e in _events(conn, stack_id, name) if e.status.startswith(action)]
        for event in events[seen:]:
            on_event(event)
        seen = len(events)
        if not state.in_progress:
            return state
        if time.monotonic() > deadline:
            raise Timeout(
                f"stack {name} still {state.status} after {int(timeout_seconds)} s",
                f"it goes on in the cloud: watch it with `stack-status {name}`",
            )
        time.sleep(POLL_SECONDS)


def failed_resources(conn: connection.Connection, state: StackState) -> list[tuple[str, str]]:
    """(resource name, reason) for each FAILED resource of the stack."""
    with cloud_errors(f"reading resources of stack {state.name}"):
        resources = conn.orchestration.resources(Stack(id=state.id, name=state.name))
        return [
            (res.name, " ".join((res.status_reason or "").split()))
            for res in resources
            if (res.status or "").endswith("_FAILED")
        ]


def failure(conn: connection.Connection, state: StackState, hint: str) -> StackFailed:
    """A StackFailed that names the failing resource and its reason."""
    failed = failed_resources(conn, state)
    if failed:
        resource, reason = failed[0]
        message = f"stack {state.name} {state.status}: resource {resource} failed: {reason}"
    else:
        message = f"stack {state.name} {state.status}: {state.reason or 'no reason given'}"
    return StackFailed(message, hint)


def delete_stack(conn: connection.Connection, state: StackState) -> None:
    """Ask Heat to delete the stack (Retain resources such as the volume stay)."""
    with cloud_errors(f"deleting stack {state.name}"):
        conn.orchestration.delete_stack(state.id)
