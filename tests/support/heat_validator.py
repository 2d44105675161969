"""Validate Heat templates offline with OpenStack Heat's own engine code.

Run with the `.venv-openstack` interpreter (openstack-heat installed). It is a JSON-lines
server: each stdin line is a request

    {"template": "<HOT text>", "environment": "<optional env text>",
     "parameters": {"name": "value", ...}, "files": {"path": "content", ...}}

and each answer is one stdout line ``{"ok": true|false, "error": "<message>"}``. On
start-up it prints ``{"ready": true}`` once Heat is loaded.

What it runs is what heat-engine runs for a new stack: template size and format checks
(`template_format.parse`), the top-level template validation, then
`Stack(..., strict_validate=True).validate(validate_res_tmpl_only=True)`, which checks
parameter values against their constraints, conditions, intrinsic functions, resource
types, properties (names, types, values, allowed values, constraints), dependencies,
deletion policies and outputs.

Only two things need a live cloud and are replaced here, nothing else:

* `Resource.is_service_available` answers "available" (no Keystone catalogue);
* custom constraints that look things up through an OpenStack API (subclasses of
  `BaseCustomConstraint`: nova.keypair, glance.image, ...) are checked against the small
  fake catalogue `FAKE_CLOUD`, so that unknown names are rejected as the cloud would.
  Offline constraints (net_cidr, ip_addr, range, length, allowed_pattern, ...) keep
  Heat's real checks.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from typing import Any

# The fake cloud: what the lookup constraints accept (names and IDs).
FAKE_VOLUME_ID = "5b3a4c2e-9d1f-4e6a-8b7c-0f1e2d3c4b5a"
FAKE_CLOUD: dict[str, frozenset[str]] = {
    "nova.keypair": frozenset({"demo-key"}),
    "nova.flavor": frozenset({"m1.small", "m1.medium"}),
    "glance.image": frozenset({"debian-12", "c5a4a5d6-0b8e-4f5e-9a3c-1d2e3f4a5b6c"}),
    "neutron.network": frozenset({"public", "ext-net"}),
    "cinder.volume": frozenset({FAKE_VOLUME_ID}),
    "cinder.vtype": frozenset({"standard", "ssd"}),
}


def _install_offline_stubs() -> None:
    """Replace the two cloud look-ups (service catalogue, lookup constraints)."""
    from heat.engine import constraints, resource

    def is_service_available(cls: type, context: Any) -> tuple[bool, str | None]:
        return True, None

    resource.Resource.is_service_available = classmethod(is_service_available)

    real_is_valid = constraints.CustomConstraint._is_valid
    # Constraints that keep this method query an OpenStack API through context.clients;
    # the offline ones (net_cidr, ip_addr, dns_name, ...) override it.
    cloud_lookup = constraints.BaseCustomConstraint.validate

    def _is_valid(self: constraints.CustomConstraint, value: Any, schema: Any, ctx: Any) -> bool:
        checker = self.custom_constraint
        if type(checker).validate is not cloud_lookup:  # offline check: Heat's own
            return real_is_valid(self, value, schema, ctx)
        known = FAKE_CLOUD.get(self.name)
        if known is None:
            checker._error_message = (
                f"constraint {self.name} has no entry in the offline fake cloud "
                "(add one to FAKE_CLOUD in tests/support/heat_validator.py)"
            )
            return False
        if str(value) in known:
            return True
        checker._error_message = f"{self.name} {value!r} not found in the cloud"
        return False

    constraints.CustomConstraint._is_valid = _is_valid


def _setup_heat() -> Any:
    """Load Heat's configuration, resource plugins and an admin request context."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    from heat.common import config  # noqa: F401 (registers Heat's options)
    from oslo_config import cfg

    cfg.CONF([], project="heat", default_config_files=[])
    from heat.common import context
    from heat.engine import resources

    resources.initialise()
    _install_offline_stubs()
    return context.get_admin_context()


def validate(ctx: Any, request: dict[str, Any]) -> str | None:
    """Validate one request; the error message, or None when Heat accepts it."""
    from heat.common import environment_format, exception, template_format
    from heat.engine import environment, stack, template
    from oslo_config import cfg

    parsed = template_format.parse(request["template"])
    env = environment_format.parse(request.get("environment") or "{}")
    env.setdefault("parameters", {}).update(request.get("parameters") or {})
    tmpl = template.Template(
        parsed, files=request.get("files") or {}, env=environment.Environment(env)
    )
    tmpl.validate()
    max_resources = cfg.CONF.max_resources_per_stack
    if max_resources != -1 and len(tmpl[tmpl.RESOURCES]) > max_resources:
        raise exception.RequestLimitExceeded(message=exception.StackResourceLimitExceeded.msg_fmt)
    heat_stack = stack.Stack(ctx, "dupstack-validate", tmpl, strict_validate=True)
    heat_stack.validate(validate_res_tmpl_only=True)
    return None


def serve() -> None:
    """Answer one JSON line per request line on stdin until it closes."""
    # Answers go to the original stdout; anything Heat or a library prints goes to stderr.
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    stdin = sys.stdin
    ctx = _setup_heat()
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            error = validate(ctx, request)
        except Exception as exc:  # every rejection is reported, none stops the server
            error = f"{type(exc).__name__}: {exc}"
        answer = {"ok": error is None, "error": error or ""}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve()
