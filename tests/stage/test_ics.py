"""A scheduled space's calendar event: exact RFC 5545 text, escaping and line folding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rostra.stage.ics import event_ics
from rostra.store.base import SpaceRecord

LISTEN_URL = "https://rostra.example/listen/a1b2c3d4e5f6"
CREATED = datetime(2026, 11, 29, 23, 0, 5, 123_000, tzinfo=UTC)
# 20:00 in UTC+02:00 is 18:00 UTC: DTSTART is always in UTC
STARTS = datetime(2026, 12, 1, 20, 0, tzinfo=timezone(timedelta(hours=2)))


def space(title: str = "Weekly show", scheduled_at: datetime | None = STARTS) -> SpaceRecord:
    return SpaceRecord(
        id="a1b2c3d4e5f6",
        title=title,
        status="scheduled",
        created_at=CREATED,
        scheduled_at=scheduled_at,
    )


def test_event_is_one_vevent_with_utc_start_and_a_default_hour() -> None:
    assert event_ics(space(), listen_url=LISTEN_URL) == (
        b"BEGIN:VCALENDAR\r\n"
        b"VERSION:2.0\r\n"
        b"PRODID:-//Rostra//Rostra live audio//EN\r\n"
        b"BEGIN:VEVENT\r\n"
        b"SUMMARY:Weekly show\r\n"
        b"DTSTART:20261201T180000Z\r\n"
        b"DURATION:PT1H\r\n"
        b"DTSTAMP:20261129T230005Z\r\n"
        b"UID:a1b2c3d4e5f6@rostra.example\r\n"
        b"DESCRIPTION:Listen live: https://rostra.example/listen/a1b2c3d4e5f6\r\n"
        b"URL:https://rostra.example/listen/a1b2c3d4e5f6\r\n"
        b"END:VEVENT\r\n"
        b"END:VCALENDAR\r\n"
    )


def test_summary_escapes_commas_semicolons_backslashes_and_newlines() -> None:
    text = event_ics(space("Q&A; news, views\\notes\nmore"), listen_url=LISTEN_URL)

    assert b"\r\nSUMMARY:Q&A\\; news\\, views\\\\notes\\nmore\r\n" in text


def test_long_lines_fold_at_75_octets_without_splitting_a_character() -> None:
    title = "Débat: " + "é" * 60 + " 🎙️ " + "x" * 40
    text = event_ics(space(title), listen_url=LISTEN_URL)

    lines = text.split(b"\r\n")
    assert all(len(line) <= 75 for line in lines), [len(line) for line in lines]
    for line in lines:
        line.decode("utf-8")  # each physical line is whole UTF-8: no character cut in two
    summary = next(i for i, line in enumerate(lines) if line.startswith(b"SUMMARY:"))
    folded = [lines[summary]]
    for line in lines[summary + 1 :]:
        if not line.startswith(b" "):
            break
        folded.append(line[1:])
    assert len(folded) >= 3
    assert b"".join(folded).decode() == f"SUMMARY:{title}"


def test_unscheduled_space_has_no_event() -> None:
    with pytest.raises(ValueError, match="no scheduled start"):
        event_ics(space(scheduled_at=None), listen_url=LISTEN_URL)
