"""Session fixture: OpenStack Heat's own validator, run offline in the `.venv-openstack`.

The validator (tests/support/heat_validator.py) is started once per session and answers
one JSON line per template. If it cannot start, the tests FAIL: the templates must not
be reported as checked when Heat never saw them.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tests" / "support" / "heat_validator.py"
OPENSTACK_PYTHON_ENV = "DUPSTACK_OPENSTACK_PYTHON"
START_TIMEOUT = 60.0
ANSWER_TIMEOUT = 30.0


def openstack_python() -> Path:
    """The interpreter with openstack-heat installed (override: $DUPSTACK_OPENSTACK_PYTHON)."""
    override = os.environ.get(OPENSTACK_PYTHON_ENV)
    return Path(override) if override else ROOT / ".venv-openstack" / "bin" / "python"


@dataclass(frozen=True)
class Verdict:
    """Heat's answer about one template."""

    ok: bool
    error: str


class HeatValidator:
    """Client of the JSON-lines validator subprocess."""

    def __init__(self, python: Path) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        self._proc = subprocess.Popen(
            [str(python), str(VALIDATOR)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            ready = self._next_line(START_TIMEOUT)
            if json.loads(ready) != {"ready": True}:
                raise RuntimeError(f"unexpected greeting from the validator: {ready!r}")
        except BaseException:
            self._proc.kill()
            self.close()
            raise

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put("")  # end of output: the validator exited

    def _next_line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no answer from the validator within {timeout:.0f} s") from None
        if not line:
            raise RuntimeError(f"the validator exited:\n{self.stderr_tail()}")
        return line

    def stderr_tail(self, limit: int = 4000) -> str:
        """The end of what the validator wrote on stderr (for failure messages)."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:]

    def validate(
        self,
        template: str,
        parameters: dict[str, Any] | None = None,
        environment: str | None = None,
    ) -> Verdict:
        """Ask Heat whether it accepts `template` with these parameters."""
        request = {"template": template, "parameters": parameters or {}}
        if environment is not None:
            request["environment"] = environment
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        answer = json.loads(self._next_line(ANSWER_TIMEOUT))
        return Verdict(ok=bool(answer["ok"]), error=str(answer["error"]))

    def close(self) -> None:
        """Stop the subprocess (closing stdin ends its loop)."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


@pytest.fixture(scope="session")
def heat() -> Iterator[HeatValidator]:
    """OpenStack Heat's validator, started once for the session."""
    python = openstack_python()
    hint = (
        f"Heat validation needs openstack-heat in {python}: run `make deps` "
        f"(or `make .venv-openstack/.stamp`), or point ${OPENSTACK_PYTHON_ENV} at a Python "
        "that has openstack-heat installed."
    )
    if not python.exists():
        pytest.fail(f"{python} does not exist. {hint}", pytrace=False)
    try:
        validator = HeatValidator(python)
    except (OSError, RuntimeError, ValueError) as exc:
        pytest.fail(f"the Heat validator could not start: {exc}\n{hint}", pytrace=False)
    yield validator
    validator.close()
