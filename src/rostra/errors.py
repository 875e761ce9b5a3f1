"""Domain errors named as facts, grouped by category; web/problems.py alone maps them to HTTP.

Foundation module: imports no plane.
"""

from __future__ import annotations


class RostraError(Exception):
    """Base of every error a client can cause; `detail` names the value and the rule."""

    type_slug = "error"
    title = "Error"

    def __init__(self, detail: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


class BadRequest(RostraError):
    """The request cannot be parsed."""

    type_slug = "bad-request"
    title = "Malformed request"


class Unauthorized(RostraError):
    """A credential is missing, malformed, forged or expired."""

    type_slug = "unauthorized"
    title = "Missing or invalid credential"


class Forbidden(RostraError):
    """A valid credential that is not allowed here."""

    type_slug = "forbidden"
    title = "Not allowed"


class NotFound(RostraError):
    """The thing named does not exist."""

    type_slug = "not-found"
    title = "Not found"


class Conflict(RostraError):
    """The request conflicts with the current state."""

    type_slug = "conflict"
    title = "State conflict"


class MethodNotAllowed(RostraError):
    """The resource exists but does not take this method."""

    type_slug = "method-not-allowed"
    title = "Method not allowed"


class PayloadTooLarge(RostraError):
    """The body is larger than allowed."""

    type_slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(RostraError):
    """The body has the wrong content type."""

    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


class InvalidFields(RostraError):
    """The body parses but its fields break a rule."""

    type_slug = "invalid-fields"
    title = "Invalid fields"


class TooManyRequests(RostraError):
    """One client is over its limit."""

    type_slug = "too-many-requests"
    title = "Too many requests"


class Unavailable(RostraError):
    """The service is overloaded or not ready."""

    type_slug = "unavailable"
    title = "Service unavailable"


class SpaceNotFound(NotFound):
    """No space has this id."""

    type_slug = "space-not-found"


class SpaceEnded(Conflict):
    """The space has ended: no more speaking or state changes."""

    type_slug = "space-ended"


class SpaceNotLive(Conflict):
    """The operation needs a live space."""

    type_slug = "space-not-live"


class StageFull(Conflict):
    """The stage already holds the maximum number of voices."""

    type_slug = "stage-full"


class HandQueueFull(Conflict):
    """The space's hand queue already holds as many raised hands as it may (a state of the
    space, not one client over its own limit: so a Conflict, not TooManyRequests)."""

    type_slug = "hand-queue-full"
    title = "Hand queue full"


class SpeakerNotFound(NotFound):
    """No speaker session has this id in the space."""

    type_slug = "speaker-not-found"


class InvalidSdp(BadRequest):
    """The SDP offer cannot be parsed or carries no usable audio."""

    type_slug = "invalid-sdp"


class CredentialMissing(Unauthorized):
    """No credential was sent."""

    type_slug = "credential-missing"


class CredentialInvalid(Unauthorized):
    """The credential is malformed, forged or tampered."""

    type_slug = "credential-invalid"


class CredentialExpired(Unauthorized):
    """The credential was valid but has expired."""

    type_slug = "credential-expired"


class CredentialWrongSpace(Forbidden):
    """The credential belongs to another space."""

    type_slug = "credential-wrong-space"


class InviteRevoked(Forbidden):
    """The invite was revoked by the host."""

    type_slug = "invite-revoked"


class InviteUsedUp(Forbidden):
    """The invite has been used as many times as it allows."""

    type_slug = "invite-used-up"


class RoleNotAllowed(Forbidden):
    """The credential's role may not do this."""

    type_slug = "role-not-allowed"


class MediaNotFound(NotFound):
    """No media file by this name."""

    type_slug = "media-not-found"


class TicketInvalid(Unauthorized):
    """The listener ticket is malformed, forged or tampered."""

    type_slug = "ticket-invalid"
    title = "Invalid ticket"


class TicketExpired(Unauthorized):
    """The listener ticket was valid but has expired: join again."""

    type_slug = "ticket-expired"
    title = "Expired ticket"


class TicketWrongSpace(Forbidden):
    """The listener ticket is valid but belongs to another space."""

    type_slug = "ticket-wrong-space"
    title = "Ticket of another space"


class ReactionNotAllowed(InvalidFields):
    """The emoji is not one of the space's reactions."""

    type_slug = "reaction-not-allowed"
    title = "Reaction not allowed"


class ReactionRateLimited(TooManyRequests):
    """This ticket sent reactions faster than allowed."""

    type_slug = "reaction-rate-limited"
    title = "Too many reactions"


class StreamListenersFull(Unavailable):
    """This listener worker already carries as many progressive-stream listeners as it may."""

    type_slug = "stream-listeners-full"
    title = "Too many stream listeners here"


class OriginUnavailable(Unavailable):
    """The origin (the speakers' path) does not answer: it is restarting or down."""

    type_slug = "origin-unavailable"
    title = "Origin unavailable"


class SpaceUnreadable(Conflict):
    """The space's stored record holds a value that cannot be read (written before the rules
    that now refuse it): the space cannot be served until an operator fixes or removes it."""

    type_slug = "space-unreadable"
    title = "Space record unreadable"


class TicketRevoked(Forbidden):
    """The listener ticket is genuine but was given back (the listener left): join again."""

    type_slug = "ticket-revoked"
    title = "Revoked ticket"


class InviteSeatsTaken(Conflict):
    """A shared invite link already holds as many stage seats at once as it allows."""

    type_slug = "invite-seats-taken"
    title = "Invite's seats taken"


class SessionNotOwned(Forbidden):
    """The credential did not create this stage session, and is not the host's."""

    type_slug = "session-not-owned"
    title = "Not your session"


class HostLinkRotated(Forbidden):
    """The host link was rotated: tokens of an older generation no longer work."""

    type_slug = "host-link-rotated"
    title = "Host link rotated"


class ChallengeRequired(Unauthorized):
    """Joining this space needs a proof-of-work (ALTCHA) first; the problem carries the
    challenge to solve, so a client needs one round trip."""

    type_slug = "challenge-required"
    title = "Proof-of-work required"

    def __init__(self, detail: str, *, challenge: dict[str, object]) -> None:
        super().__init__(detail)
        self.challenge = challenge

    @property
    def extra(self) -> dict[str, object]:
        """Members added to the problem document."""
        return {"challenge": self.challenge}


class ChallengeFailed(Unauthorized):
    """The proof-of-work is malformed, was not issued here, was altered, does not solve its
    challenge, or was solved for another space."""

    type_slug = "challenge-failed"
    title = "Proof-of-work failed"


class ChallengeSpent(Unauthorized):
    """The proof-of-work was valid but has already been used once."""

    type_slug = "challenge-spent"
    title = "Proof-of-work already used"


class SourceRateLimited(TooManyRequests):
    """One client address, or its network prefix, is over its per-source request limit."""

    type_slug = "rate-limited"
    title = "Too many requests from this source"


class WaitingRoom(Unavailable):
    """The space admits listeners at its admission rate and this join is in line: retry after
    `retry_after_s` with the arrival token, which keeps the place."""

    type_slug = "waiting-room"
    title = "In line to be counted"

    def __init__(
        self, detail: str, *, position: int, number: int, arrival: str, retry_after_s: float
    ) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.position = position
        self.number = number
        self.arrival = arrival
        # members of the problem body (web/problems.py adds them)
        self.extra = {
            "position": position,
            "retry_after_s": retry_after_s,
            "number": number,
            "arrival": arrival,
        }


class ArrivalInvalid(Unauthorized):
    """The arrival token (a place in a space's line) is malformed, forged or tampered."""

    type_slug = "arrival-invalid"
    title = "Invalid arrival token"


class ArrivalExpired(Unauthorized):
    """The arrival token is older than its life: join again without it, at the back."""

    type_slug = "arrival-expired"
    title = "Expired arrival token"


class ArrivalWrongSpace(Forbidden):
    """The arrival token is genuine but holds a place in another space's line."""

    type_slug = "arrival-wrong-space"
    title = "Arrival token of another space"


class ArrivalSpent(Unauthorized):
    """The arrival token's number was already admitted once: join again without it."""

    type_slug = "arrival-spent"
    title = "Spent arrival token"


class IncidentLogUnavailable(Unavailable):
    """The incident log's store (the data folder's database, or Redis) cannot be read now."""

    type_slug = "incident-log-unavailable"
    title = "Incident log unavailable"


class TicketAlreadyReturned(Unauthorized):
    """A ticket given back on leave was already exchanged once for a returning listener's new
    ticket: join again without it."""

    type_slug = "ticket-already-returned"
    title = "Ticket already returned"


class ScenarioInvalid(InvalidFields):
    """A rehearsal scenario (TOML file or flag) has a missing, unknown or out-of-range key."""

    type_slug = "scenario-invalid"
    title = "Invalid rehearsal scenario"


class PlaylistReloadMalformed(BadRequest):
    """A blocking playlist reload's `_HLS_msn` / `_HLS_part` is not a decimal integer, or names
    a part without its segment (RFC 8216bis §6.2.5.2)."""

    type_slug = "playlist-reload-malformed"
    title = "Malformed blocking playlist reload"


class PlaylistReloadTooFar(BadRequest):
    """A blocking playlist reload asks for a segment more than two past the playlist's last."""

    type_slug = "playlist-reload-too-far"
    title = "Blocking playlist reload too far ahead"


class PlaylistPartNotReady(Unavailable):
    """The part a blocking playlist reload waits for did not appear within three target
    durations: the program has stopped making parts."""

    type_slug = "playlist-part-not-ready"
    title = "Part not ready"


class PlaylistWaitersFull(Unavailable):
    """This listener worker already holds as many blocking playlist reloads as it allows."""

    type_slug = "playlist-waiters-full"
    title = "Too many blocking playlist reloads"


class RehearsalNotStarted(Unavailable):
    """A rehearsal could not run: its target unreachable at the start, its space not live, no
    admin token to make one, or its load generator failed."""

    type_slug = "rehearsal-not-started"
    title = "Rehearsal could not run"


class CohostLimitReached(Conflict):
    """The space already has as many co-host invites alive as it allows (revoke one first)."""

    type_slug = "cohost-limit-reached"
    title = "Co-host limit reached"


class HandNotFound(NotFound):
    """No raised hand in the space's queue has this id (lowered, or its listener left)."""

    type_slug = "hand-not-found"
    title = "Hand not found"


class HandInviteRevoked(Conflict):
    """The listener of this hand was invited once and that invite was revoked: the hand queue
    does not invite them again (the host may mint a named invite instead)."""

    type_slug = "hand-invite-revoked"
    title = "Hand invite revoked"


class SpaceNotScheduled(NotFound):
    """The space was created without a scheduled start: it has no calendar event."""

    type_slug = "space-not-scheduled"
    title = "Space not scheduled"


class ClipNoRecording(Conflict):
    """A clip was asked of a space that has recorded nothing yet (not live yet, or just gone
    live)."""

    type_slug = "clip-no-recording"
    title = "Nothing recorded to clip"


class ClipOutsideRecording(InvalidFields):
    """A clip's `end_s_ago` and `duration_s` reach back before the start of the recording."""

    type_slug = "clip-outside-recording"
    title = "Clip outside the recording"


class ClipRateLimited(TooManyRequests):
    """This ticket (or the host) made clips faster than allowed."""

    type_slug = "clip-rate-limited"
    title = "Too many clips"


class ClipLimitReached(Conflict):
    """The space holds as many clips as a space may."""

    type_slug = "clip-limit-reached"
    title = "Clip limit of the space reached"


class ClipNotFound(NotFound):
    """No clip has this id."""

    type_slug = "clip-not-found"
    title = "Clip not found"


class SourceAlreadyLive(Conflict):
    """A broadcast-software source already feeds this space: one at a time."""

    type_slug = "source-already-live"
    title = "A source is already live"


class SourcePasswordWrong(Unauthorized):
    """An Icecast source's Basic credential is missing, or not the space's source password."""

    type_slug = "source-password-wrong"
    title = "Wrong source password"


class SourceFormatUnsupported(UnsupportedMediaType):
    """An Icecast source sent a Content-Type this server does not decode."""

    type_slug = "source-format-unsupported"
    title = "Unsupported source format"


class MuteLocked(Forbidden):
    """A speaker tried to unmute themselves after the host or a co-host muted and locked them."""

    type_slug = "mute-locked"
    title = "Muted and locked by the host"


class DeviceBlocked(Forbidden):
    """The host blocked this device in this space: it may not listen or speak there again."""

    type_slug = "device-blocked"
    title = "Device blocked in this space"


class DeviceInvalid(InvalidFields):
    """A device id (the join's `device`, the `Rostra-Device` header) is malformed."""

    type_slug = "device-invalid"
    title = "Invalid device id"


class BlockTargetInvalid(InvalidFields):
    """A block names not exactly one of session, ticket or hand."""

    type_slug = "block-target-invalid"
    title = "Invalid block target"


class HandInvalid(InvalidFields):
    """A hand id (in a path or a block's body) is not of the form `GET …/hands` gives."""

    type_slug = "hand-invalid"
    title = "Invalid hand id"


class SessionInvalid(InvalidFields):
    """A stage session id (in a path or a block's body) is not of the form the stage gives."""

    type_slug = "session-invalid"
    title = "Invalid session id"
