"""`rostra space list --upcoming`: the spaces scheduled and not started yet, soonest first, each
with its start time and its calendar event, which `/live/{id}/event.ics` serves to anyone."""

from __future__ import annotations

import json
import time

import httpx

from tests.cli.test_space_commands import rostra
from tests.conftest import Server


def hours_ahead(hours: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + hours * 3600))


def create(server: Server, title: str, *extra: str) -> dict[str, str]:
    created = rostra("space", "create", "--title", title, *extra, server=server)
    assert created.returncode == 0, created.stderr
    space: dict[str, str] = json.loads(created.stdout)
    return space


def test_upcoming_lists_scheduled_spaces_soonest_first_with_their_event(server: Server) -> None:
    later = create(server, "In three hours", "--scheduled-at", hours_ahead(3))
    soon = create(server, "In one hour", "--scheduled-at", hours_ahead(1))
    middle = create(server, "In two hours", "--scheduled-at", hours_ahead(2))
    started = create(server, "Started early", "--scheduled-at", hours_ahead(0.5))
    unscheduled = create(server, "No time set")
    create(server, "Live now", "--live")
    assert rostra("space", "start", started["id"], server=server).returncode == 0

    listed = rostra("space", "list", "--upcoming", server=server)

    assert listed.returncode == 0, listed.stderr
    spaces = json.loads(listed.stdout)["spaces"]
    assert [s["id"] for s in spaces] == [soon["id"], middle["id"], later["id"]]
    assert [s["scheduled_at"] for s in spaces] == sorted(s["scheduled_at"] for s in spaces)
    assert all(s["scheduled_at"].endswith("Z") for s in spaces)
    event = httpx.get(spaces[0]["event_url"], timeout=10)
    assert event.status_code == 200, event.text
    assert event.headers["content-type"] == "text/calendar; charset=utf-8"
    assert event.headers["cache-control"].startswith("public, max-age=")
    stamp = soon["scheduled_at"][:19].replace("-", "").replace(":", "")
    assert f"\r\nDTSTART:{stamp}Z\r\n" in event.text
    assert "\r\nSUMMARY:In one hour\r\n" in event.text
    assert f"\r\nURL:{soon['listen_url']}\r\n" in event.text
    again = httpx.get(spaces[0]["event_url"], headers={"If-None-Match": event.headers["etag"]})
    assert again.status_code == 304
    head = httpx.head(spaces[0]["event_url"], timeout=10)
    assert head.status_code == 200
    for missing, words in (
        (unscheduled["id"], "created without a scheduled start"),
        ("zzzzzzzzzzzz", "no space has id"),
    ):
        refused = httpx.get(f"{server.url}/live/{missing}/event.ics", timeout=10)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert words in refused.json()["detail"]


def test_create_refuses_a_past_or_far_schedule_precisely(server: Server) -> None:
    for when, words in (
        (hours_ahead(-1), "is past"),
        (hours_ahead(24 * 400), "more than a year ahead"),
    ):
        refused = rostra("space", "create", "--title", "T", "--scheduled-at", when, server=server)
        assert refused.returncode == 1
        assert refused.stderr.startswith("422: "), refused.stderr
        assert words in refused.stderr
    both = rostra(
        "space",
        "create",
        "--title",
        "T",
        "--live",
        "--scheduled-at",
        hours_ahead(1),
        server=server,
    )
    assert both.returncode == 1
    assert "created live has no scheduled_at" in both.stderr
