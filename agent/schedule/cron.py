"""Cron expressions of the inventory's `schedule:`, with Jenkins-style `H` for per-host jitter.

`H` in a field stands for one value picked by a hash of the host's name (`H(1-5)` within a
range): every host gets its own stable minute and hour, so a fleet does not start at once,
and the same inventory always renders the same crontab. croniter does the parsing and the
arithmetic. The crontab gets the expanded fields (plain numbers), so names and ranges work
whatever the server's cron knows; what no plain field can say is refused here: seconds or
year fields, `L` (last day) and `#` (nth weekday).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter
from croniter.croniter import CroniterError

# What cron means by them (croniter would hash them when given a host's name).
KEYWORDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


class BadCron(ValueError):
    """An expression that the server's cron cannot run; the message says why."""


@dataclass(frozen=True)
class Cron:
    """One expression made concrete for one host: `fields` is what the crontab line says."""

    expression: str  # as written in the inventory (may hold H)
    fields: str  # five plain cron fields, H resolved

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after `moment` (an aware datetime in the server's zone)."""
        return croniter(self.fields, moment).get_next(datetime)

    def last_before(self, moment: datetime) -> datetime:
        """The latest run at or before `moment`."""
        return croniter(self.fields, moment + timedelta(seconds=1)).get_prev(datetime)


def resolve(expression: str, host: str) -> Cron:
    """`expression` for `host` (H picked by its name); BadCron if cron could not run it."""
    text = " ".join(expression.split())
    if text.startswith("@") and text.lower() not in KEYWORDS:
        raise BadCron(f"unknown keyword {text.split()[0]!r} (known: {', '.join(KEYWORDS)})")
    plain = KEYWORDS.get(text.lower(), text)
    if len(plain.split()) != 5:
        raise BadCron("needs 5 fields: minute hour day-of-month month day-of-week")
    try:
        expanded, nth_weekday = croniter.expand(plain, hash_id=host.encode())
        fields = " ".join(_field(values) for values in expanded)
        croniter(fields, datetime(2026, 1, 1)).get_next(datetime)  # runs at least once
    except (CroniterError, ValueError) as error:
        reason = str(error).replace(f"[{plain.lower()}] ", "")
        if "out of range" in reason:
            reason = "a value is out of range (minute 0-59, hour 0-23, day 1-31, month 1-12, "
            reason += "weekday 0-7) or the date never comes"
        raise BadCron(reason) from None
    if nth_weekday:
        raise BadCron("uses #, which the server's cron does not know")
    return Cron(expression=text, fields=fields)


def _field(values: list[int | str]) -> str:
    if values == ["*"]:
        return "*"
    if any(not isinstance(value, int) for value in values):
        raise BadCron("uses L, which the server's cron does not know")
    return ",".join(str(value) for value in values)
