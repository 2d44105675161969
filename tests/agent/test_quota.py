"""A host's limit on the volume: its quota, or an equal share of what the quotas given leave,
so that a host without a quota cannot take the room of another (agent/quota.py). Measured
on a real folder; the fleet tests (test_hostile) stop real runs at these limits."""

from __future__ import annotations

import os
from pathlib import Path

from agent import quota
from agent.errors import QuotaExceeded

MIB = 1 << 20


def capacity(folder: Path) -> int:
    volume = os.statvfs(folder)
    return volume.f_blocks * volume.f_frsize


def test_a_host_with_a_quota_has_its_quota(tmp_path: Path) -> None:
    room = quota.limit("web1", {"web1": 5 * MIB, "db1": None}, tmp_path, 0)
    assert (room.size, room.given) == (5 * MIB, True)


def test_hosts_without_a_quota_split_what_the_reserve_and_the_quotas_leave(tmp_path: Path) -> None:
    quotas = {"web1": 5 * MIB, "db1": None, "app1": None}
    room = quota.limit("db1", quotas, tmp_path, 3 * MIB)
    assert room == quota.Limit((capacity(tmp_path) - 3 * MIB - 5 * MIB) // 2, False, 2)
    assert quota.limit("app1", quotas, tmp_path, 3 * MIB) == room


def test_the_default_reserve_is_kept_out_of_the_shares(tmp_path: Path) -> None:
    room = quota.limit("db1", {"db1": None}, tmp_path, None)
    assert room.size == capacity(tmp_path) - quota.default_reserve(tmp_path)


def test_quotas_that_take_the_whole_volume_leave_the_others_none(tmp_path: Path) -> None:
    quotas = {"web1": capacity(tmp_path), "db1": None}
    assert quota.limit("db1", quotas, tmp_path, 0).size == 0


def test_a_host_over_its_share_is_told_so_and_how_to_give_it_room(tmp_path: Path) -> None:
    (tmp_path / "duplicity-full.vol1.difftar.gpg").write_bytes(os.urandom(64 << 10))
    refusal = quota.over("db1", tmp_path, quota.Limit(32 << 10, False, 3), 0)
    assert isinstance(refusal, QuotaExceeded)
    assert refusal.message.startswith("db1 is over its share of the volume: its sets take ")
    assert "split between the 3 host(s) without a quota" in refusal.message
    assert "give it a quota (hosts.db1.quota in the inventory)" in (refusal.hint or "")


def test_a_host_over_its_quota_is_told_to_raise_it(tmp_path: Path) -> None:
    (tmp_path / "duplicity-full.vol1.difftar.gpg").write_bytes(os.urandom(64 << 10))
    refusal = quota.over("web1", tmp_path, quota.Limit(32 << 10, True), 0, held=MIB)
    assert isinstance(refusal, QuotaExceeded)
    assert refusal.message.startswith("web1 is over its quota: its sets take ")
    assert "and its quarantine 1.0 MiB of 32.0 KiB" in refusal.message
    assert "raise hosts.web1.quota" in (refusal.hint or "")


def test_a_host_within_its_limit_on_a_volume_below_the_reserve_is_not_blamed(
    tmp_path: Path,
) -> None:
    """The reserve crossed while the host is within its limit: the message says the room went
    elsewhere, not that the host took it."""
    refusal = quota.over("web1", tmp_path, quota.Limit(1 << 40, False, 2), capacity(tmp_path))
    assert isinstance(refusal, QuotaExceeded)
    assert "less than the reserve" in refusal.message
    assert "web1's sets take" in refusal.message and "of its share of" in refusal.message
    assert "something besides the hosts' sets fills the volume" in (refusal.hint or "")


def test_nothing_stops_a_host_within_its_limit(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x" * 4096)
    assert quota.over("web1", tmp_path, quota.Limit(1 << 40, True), 0) is None
