"""Clip records and limits: per maker per minute and per hour (with the exact wait), per space
overall, shared by every worker of the data folder, and nothing kept of a refused cut."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rostra.clock import ManualClock
from rostra.errors import ClipLimitReached, ClipNotFound, ClipOutsideRecording, ClipRateLimited
from rostra.files import write_durable
from rostra.stage.clips import (
    ClipBook,
    ClipLimits,
    ClipRecord,
    check_limits,
    clip_space,
    made_by,
)

SPACE = "abcd1234efgh"
LIMITS = ClipLimits(per_minute=3, per_hour=20, per_space=200)


def _record(who: str, at_s: float, number: int = 0) -> ClipRecord:
    return ClipRecord(f"{SPACE}-{number:012d}", SPACE, who, at_s, 5.0, 0.0, 100)


def test_a_maker_past_three_a_minute_waits_until_the_oldest_leaves_the_minute() -> None:
    records = [_record("a", at) for at in (0.0, 10.0, 20.0)]
    with pytest.raises(ClipRateLimited, match="3 clips per minute") as refused:
        check_limits(records, "a", 30.0, LIMITS)
    assert refused.value.retry_after_s == pytest.approx(30.0)
    check_limits(records, "a", 60.5, LIMITS)
    check_limits(records, "b", 30.0, LIMITS)  # another maker is not held back


def test_a_maker_past_twenty_an_hour_waits_for_the_hour() -> None:
    records = [_record("a", at * 120.0, at) for at in range(20)]
    now_s = 20 * 120.0
    with pytest.raises(ClipRateLimited, match="20 clips per hour") as refused:
        check_limits(records, "a", now_s, LIMITS)
    assert refused.value.retry_after_s == pytest.approx(3600.0 - now_s)


def test_a_space_keeps_at_most_its_limit_of_clips() -> None:
    records = [_record(f"maker{n}", 0.0, n) for n in range(200)]
    with pytest.raises(ClipLimitReached, match="at most 200 clips"):
        check_limits(records, "new", 10_000.0, LIMITS)


def test_clip_ids_name_their_space_and_nothing_else_is_a_clip() -> None:
    assert clip_space(f"{SPACE}-0123456789ab") == SPACE
    for bad in ("", SPACE, f"{SPACE}-short", f"../{SPACE}-0123456789ab", f"{SPACE}-0123456789AB"):
        with pytest.raises(ClipNotFound):
            clip_space(bad)


def test_workers_share_the_limit_and_a_refused_cut_keeps_nothing(tmp_path: Path) -> None:
    clock = ManualClock()
    workers = [ClipBook(tmp_path, clock, LIMITS), ClipBook(tmp_path, clock, LIMITS)]

    def refused_cut() -> bytes:
        raise ClipOutsideRecording("the recording holds 1.000 s")

    with pytest.raises(ClipOutsideRecording):
        workers[0].make(SPACE, who="x", end_s_ago=0, duration_s=5, cut=refused_cut)
    assert workers[1].records(SPACE) == []

    made: list[ClipRecord] = []
    refusals: list[ClipRateLimited] = []

    def make(book: ClipBook) -> None:
        try:
            made.append(book.make(SPACE, who="x", end_s_ago=0, duration_s=5, cut=lambda: b"m4a"))
        except ClipRateLimited as error:
            refusals.append(error)

    threads = [threading.Thread(target=make, args=(workers[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(made) == 3
    assert len(refusals) == 5
    assert {r.id for r in workers[0].records(SPACE)} == {r.id for r in made}
    record, path = workers[1].find(made[0].id)
    assert record == made[0]
    assert record.made_by == made_by("x")
    assert path.read_bytes() == b"m4a"
    assert workers[0].file(made[0].id) == path
    for book_lookup in (workers[0].find, workers[0].file):
        with pytest.raises(ClipNotFound):
            book_lookup(f"{SPACE}-0123456789ab")


def test_a_slow_cut_holds_back_no_other_maker_and_the_limit_still_holds(tmp_path: Path) -> None:
    clock = ManualClock()
    slow_book, quick_book = ClipBook(tmp_path, clock, LIMITS), ClipBook(tmp_path, clock, LIMITS)
    cutting, release = threading.Event(), threading.Event()
    made: list[ClipRecord] = []
    refusals: list[ClipRateLimited] = []

    def slow_cut() -> bytes:
        cutting.set()
        assert release.wait(timeout=10)
        return b"slow"

    def make_slow() -> None:
        try:
            made.append(
                slow_book.make(SPACE, who="far", end_s_ago=3600, duration_s=60, cut=slow_cut)
            )
        except ClipRateLimited as error:
            refusals.append(error)

    slow = threading.Thread(target=make_slow)
    slow.start()
    assert cutting.wait(timeout=10)
    quick: list[ClipRecord] = []
    quick_thread = threading.Thread(
        target=lambda: quick.append(
            quick_book.make(SPACE, who="near", end_s_ago=0, duration_s=5, cut=lambda: b"quick")
        )
    )
    quick_thread.start()
    quick_thread.join(timeout=5)
    is_quick_done = bool(quick)
    # the slow maker's other calls fill its minute while it cuts: its own clip is then refused
    for _ in range(3):
        quick_book.make(SPACE, who="far", end_s_ago=0, duration_s=5, cut=lambda: b"x")
    release.set()
    slow.join(timeout=10)
    quick_thread.join(timeout=5)
    assert is_quick_done, "a quick clip waited for another maker's slow cut"
    assert made == []
    assert len(refusals) == 1
    assert len([r for r in quick_book.records(SPACE) if r.made_by == made_by("far")]) == 3


def test_a_failed_write_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    """Each clip's temporary name is new: one left behind per failure would fill a full disk."""
    target = tmp_path / "taken.m4a"
    target.mkdir()
    (target / "inside").write_bytes(b"")  # a rename over a non-empty folder fails
    with pytest.raises(OSError, match=r"taken\.m4a"):
        write_durable(target, b"m4a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.m4a"]
