"""Audience plane: listener tickets, the honest live count, reactions."""

from rostra.audience.presence import PresenceService, PresenceSnapshot, PresenceStats
from rostra.audience.tickets import IssuedTicket, Ticket, TicketSigner, new_listener_id

__all__ = [
    "IssuedTicket",
    "PresenceService",
    "PresenceSnapshot",
    "PresenceStats",
    "Ticket",
    "TicketSigner",
    "new_listener_id",
]
