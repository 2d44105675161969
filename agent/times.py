"""`--time T` as the operator types it: what duplicity would misread is refused here.

duplicity takes "now", epoch seconds, intervals back from now (3D, 1h30m), and dates like
2026-11-22 or 2026-11-22T03:00:00Z. An option-looking value would reach its command line as an
option; a time in the future silently means "the latest set". Forms this module does not know
go on to duplicity, whose own refusal is read in agent/duplicity/exit_codes.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from agent.errors import UsageError

INTERVAL = re.compile(r"([0-9]{1,6}[smhDWMY]){1,7}")
SLACK = timedelta(minutes=1)  # clocks differ a little; a set made "now" is not in the future
EXAMPLES = "like 2026-11-22T03:00:00Z, 2026-11-22, 3D (ago) or epoch seconds"


def check_time(value: str | None, now: datetime | None = None) -> str | None:
    """`value` if duplicity reads it as the moment meant (None: the latest)."""
    if value is None:
        return None
    now = now or datetime.now(UTC)
    if not value or value != value.strip() or value.startswith("-") or not value.isprintable():
        raise UsageError(f"--time {value!r} is not a time", hint=f"give a time {EXAMPLES}")
    if value == "now" or INTERVAL.fullmatch(value):
        return value
    moment: datetime | None = None
    if value.isdigit():
        if len(value) > 11:  # after the year 5138
            raise UsageError(f"--time {value} is in the future", hint=f"give a time {EXAMPLES}")
        moment = datetime.fromtimestamp(int(value), UTC)
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # another of duplicity's forms: it says if it cannot read it
        if moment.tzinfo is None:
            moment = moment.astimezone()  # duplicity reads it in the server's time zone
    if moment > now + SLACK:
        raise UsageError(
            f"--time {value} is in the future ({moment:%Y-%m-%d %H:%M %Z}): it would mean "
            "the latest backup",
            hint="leave --time out for the latest, or give a past time",
        )
    return value


# duplicity's interval units (dup_time.intstringtoseconds): a month is 30 days, a year 365.
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "D": 86400, "W": 7 * 86400, "M": 30 * 86400,
                "Y": 365 * 86400}  # fmt: skip


def interval(text: str) -> timedelta:
    """`7D`, `12h`, `1W2D` as a duration, as duplicity reads --full-if-older-than."""
    pairs = re.findall(r"(\d+)([smhDWMY])", text)
    try:
        return timedelta(seconds=sum(int(count) * UNIT_SECONDS[unit] for count, unit in pairs))
    except OverflowError:  # longer than timedelta holds: for ever, as far as dupctl cares
        return timedelta.max
