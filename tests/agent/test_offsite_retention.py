"""Offsite retention decisions (agent/offsite/retention.py): chains from object names, the
newest never removed, the minimum-duration guard and what an early deletion costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.offsite import retention
from agent.offsite.prices import load_prices

NOW = datetime(2026, 12, 1, tzinfo=UTC)
GIB = 1 << 30
CLASSES = ("STANDARD", "DEEP_ARCHIVE")
PRICES = {name: load_prices(name) for name in CLASSES}


def chain_objects(full: str, incs: list[str], age_days: int) -> list[retention.Listed]:
    """A full at `full` and incrementals ending at each of `incs`, `age_days` old."""
    modified = NOW - timedelta(days=age_days)
    listed = [
        retention.Listed(f"duplicity-full.{full}.vol1.difftar.gpg", GIB, "DEEP_ARCHIVE", modified),
        retention.Listed(f"duplicity-full.{full}.manifest.gpg", 1000, "STANDARD", modified),
        retention.Listed(f"duplicity-full-signatures.{full}.sigtar.gpg", 5000, "STANDARD",
                         modified),
    ]  # fmt: skip
    start = full
    for end in incs:
        listed += [
            retention.Listed(f"duplicity-inc.{start}.to.{end}.vol1.difftar.gpg", GIB,
                             "DEEP_ARCHIVE", modified),
            retention.Listed(f"duplicity-inc.{start}.to.{end}.manifest.gpg", 900, "STANDARD",
                             modified),
        ]  # fmt: skip
        start = end
    return listed


OLD = chain_objects("20260101T010000Z", ["20260102T010000Z"], age_days=300)
YOUNG = chain_objects("20261001T010000Z", [], age_days=60)
NEWEST = chain_objects("20261120T010000Z", ["20261121T010000Z"], age_days=10)
STRAY = [retention.Listed("duplicity-inc.20250101T000000Z.to.20250102T000000Z.manifest.gpg",
                          9, "STANDARD", NOW)]  # fmt: skip


def decide(**options: object) -> list[retention.Decision]:
    settings = {"keep_full": 1, "older_than": None, "now": NOW, "prices": PRICES,
                "force": False} | options  # fmt: skip
    return retention.decide([*OLD, *YOUNG, *NEWEST, *STRAY], **settings)  # type: ignore[arg-type]


def test_chains_follow_the_incrementals_and_leave_strays_out() -> None:
    found = retention.chains([*NEWEST, *STRAY, *OLD])
    assert [(c.full, c.newest, len(c.objects)) for c in found] == [
        ("20260101T010000Z", "20260102T010000Z", 5),
        ("20261120T010000Z", "20261121T010000Z", 5),
    ]


def test_keep_full_removes_old_chains_but_guards_young_archived_ones() -> None:
    old, young, newest = decide()
    assert (old.remove, young.remove, newest.remove) == (True, False, False)
    assert newest.why == "the newest chain"
    assert young.early_objects == 1 and "younger than their class's minimum" in young.why
    # 1 GiB in Deep Archive ($0.00099 a GB-month), 120 of its 180 days left: 0.00099 * 120 / 30
    assert round(young.early_usd, 6) == round(0.00099 * 120 / 30, 6)
    assert old.early_objects == 0 and old.early_usd == 0


def test_force_removes_the_young_chain_too_and_says_its_cost() -> None:
    old, young, newest = decide(force=True)
    assert (old.remove, young.remove, newest.remove) == (True, True, False)
    assert young.early_usd > 0


def test_remove_older_than_alone_and_the_newest_chain_is_always_kept() -> None:
    old, young, newest = decide(keep_full=None, older_than=timedelta(days=100))
    assert (old.remove, young.remove, newest.remove) == (True, False, False)
    [only] = retention.decide(NEWEST, keep_full=1, older_than=timedelta(days=1), now=NOW,
                              prices=PRICES, force=True)  # fmt: skip
    assert not only.remove


def test_a_chain_goes_manifests_first() -> None:
    [chain, *_] = retention.chains(OLD)
    order = retention.deletion_order(chain)
    assert [name.endswith(".manifest.gpg") for name in order] == [True, True, False, False, False]
