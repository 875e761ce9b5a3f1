"""A scheduled space as an iCalendar event (RFC 5545): one VEVENT a calendar app can add.

Stage plane: pure, a space in and the calendar's bytes out. The icalendar package escapes text
(commas, semicolons, backslashes, newlines) and folds lines at 75 octets, never inside a UTF-8
character.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from urllib.parse import urlsplit

from icalendar import Calendar, Event

from rostra.store.base import SpaceRecord

PRODUCT_ID = "-//Rostra//Rostra live audio//EN"
ICALENDAR_VERSION = "2.0"
# a space has no planned end: calendars get an hour, the usual length of a live conversation
DEFAULT_DURATION = timedelta(hours=1)
DEFAULT_UID_DOMAIN = "rostra.invalid"


def event_uid(space_id: str, listen_url: str) -> str:
    """Globally unique and stable (RFC 5545 §3.8.4.7): the space's id at the server's host."""
    host = urlsplit(listen_url).hostname or DEFAULT_UID_DOMAIN
    return f"{space_id}@{host}"


def event_ics(space: SpaceRecord, *, listen_url: str) -> bytes:
    """The space's calendar, CRLF-terminated UTF-8. Requires a scheduled start.

    DTSTAMP is when the space was created: without a METHOD it says when the event was last
    revised (§3.8.7.2), and a schedule is never revised, so the same space always gives the
    same bytes (a cache's validator stays valid)."""
    if space.scheduled_at is None:
        raise ValueError(f"space '{space.id}' has no scheduled start")
    event = Event()
    event.add("uid", event_uid(space.id, listen_url))
    event.add("dtstamp", space.created_at.astimezone(UTC))
    event.add("dtstart", space.scheduled_at.astimezone(UTC))
    event.add("duration", DEFAULT_DURATION)
    event.add("summary", space.title)
    event.add("description", f"Listen live: {listen_url}")
    event.add("url", listen_url)
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", ICALENDAR_VERSION)
    calendar.add_component(event)
    ics: bytes = calendar.to_ical()
    return ics
