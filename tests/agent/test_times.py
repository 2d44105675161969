"""--time values: what duplicity would misread is refused before it runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.errors import UsageError
from agent.times import check_time

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["now", "3D", "1h30m", "1764590400", "2026-11-22", "2026-11-22T03:00:00Z",
     "2026-12-01T12:00:30+00:00", "11/22/2026", "2026/11/22"],
)  # fmt: skip
def test_times_duplicity_reads_pass_unchanged(value: str) -> None:
    assert check_time(value, NOW) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("--version", "--time '--version' is not a time"),
        ("-3D", "--time '-3D' is not a time"),
        ("", "--time '' is not a time"),
        (" 3D", "--time ' 3D' is not a time"),
        ("3D\n--full", "is not a time"),
        ("99999999999999", "--time 99999999999999 is in the future"),
        ("1893456000", "--time 1893456000 is in the future (2030-01-01"),
        ("2099-12-31T23:59:59Z", "is in the future"),
    ],
)
def test_option_looking_or_future_times_are_refused(value: str, expected: str) -> None:
    with pytest.raises(UsageError) as raised:
        check_time(value, NOW)
    assert expected in raised.value.message
    assert raised.value.hint


def test_no_time_means_the_latest() -> None:
    assert check_time(None, NOW) is None
