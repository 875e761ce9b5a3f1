"""Signed tokens: the one format under tickets and arrival tokens, its wire form pinned."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
import struct

import pytest

from rostra.audience.admission import ArrivalSigner
from rostra.audience.signed_tokens import (
    MAX_SPACE_ID_BYTES,
    TokenKind,
    TokenSealer,
    derive_key,
)
from rostra.audience.tickets import TicketSigner
from rostra.errors import ArrivalInvalid, TicketInvalid, Unauthorized

SECRET = "deployment-signing-secret-0123456789"
SPACE = "abcdefgh1234"
NOW_S = 1_800_000_000
LISTENER_ID = "0123456789abcdef" * 2
# Issued by the signers before they shared this module: such tokens must keep verifying.
TICKET_TOKEN = "v1.ASNFZ4mrze8BI0VniavN7wAAAABrSdIAAAAOEGFiY2RlZmdoMTIzNA._5cjw1DAdcVpSfE9ZNPS_w"
ARRIVAL_TOKEN = "a1.AAAAAAAAACoAAAAAa0nSAAAAASxhYmNkZWZnaDEyMzQ.xDWvYf_1kA-zbWTiVivasQ"
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_."


class PassInvalid(Unauthorized):
    """A test kind's own error."""


PASS = TokenKind(
    version="p9",
    label=b"rostra/test/pass/v1",
    header=struct.Struct(">HI"),
    noun="pass",
    name="a test pass",
    invalid=PassInvalid,
)


def test_tickets_and_arrival_tokens_keep_their_wire_form() -> None:
    tickets, arrivals = TicketSigner(SECRET), ArrivalSigner(SECRET)
    issued = tickets.issue(SPACE, now_s=NOW_S + 0.5, ttl_s=3_600, listener_id=LISTENER_ID)
    assert issued.token == TICKET_TOKEN
    assert arrivals.issue(SPACE, 42, now_s=NOW_S, ttl_s=300) == ARRIVAL_TOKEN
    ticket = tickets.verify(TICKET_TOKEN, SPACE, now_s=NOW_S + 1)
    assert (ticket.listener_id, ticket.expires_at_s) == (LISTENER_ID, NOW_S + 3_600)
    arrival = arrivals.verify(ARRIVAL_TOKEN, SPACE, now_s=NOW_S + 1)
    assert (arrival.number, arrival.issued_at_s, arrival.expires_at_s) == (42, NOW_S, NOW_S + 300)
    # each kind refuses the other with its own typed error
    with pytest.raises(TicketInvalid, match="not a Rostra listener ticket"):
        tickets.verify(ARRIVAL_TOKEN, SPACE, now_s=NOW_S)
    with pytest.raises(ArrivalInvalid, match="not a Rostra arrival token"):
        arrivals.verify(TICKET_TOKEN, SPACE, now_s=NOW_S)


def test_a_kind_seals_its_fields_and_space_and_opens_only_its_own_tokens() -> None:
    sealer = TokenSealer(SECRET, PASS)
    token = sealer.seal(SPACE, 7, 123_456)
    opened = sealer.open(token)
    assert (opened.fields, opened.space_id) == ((7, 123_456), SPACE)
    longest = sealer.seal("s" * MAX_SPACE_ID_BYTES, 65_535, 2**32 - 1)
    assert len(longest) == sealer.max_chars == PASS.max_chars
    # the key is derived per label: the same secret under another label forges nothing
    relabelled = TokenKind("p9", b"rostra/test/other/v1", PASS.header, "pass", "x", PassInvalid)
    with pytest.raises(PassInvalid, match=r"^pass \S+ is forged or tampered$"):
        sealer.open(TokenSealer(SECRET, relabelled).seal(SPACE, 7, 123_456))
    signed, _, tag = token.rpartition(".")
    assert tag.encode() != _tag(SECRET.encode(), signed), "the raw secret must not key tokens"
    assert tag.encode() == _tag(derive_key(SECRET, PASS.label), signed)


def _tag(key: bytes, signed: str) -> bytes:
    digest = hmac.digest(key, signed.encode(), hashlib.sha256)[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


def test_every_single_character_tamper_raises_the_kinds_error() -> None:
    sealer = TokenSealer(SECRET, PASS)
    token = sealer.seal(SPACE, 7, 123_456)
    for position, original in enumerate(token):
        for replacement in TOKEN_ALPHABET:
            if replacement != original:
                with pytest.raises(PassInvalid, match=r"^pass "):
                    sealer.open(token[:position] + replacement + token[position + 1 :])


def test_sealing_refuses_an_empty_secret_or_a_bad_space_id() -> None:
    with pytest.raises(ValueError, match="signing secret"):
        TokenSealer("", PASS)
    sealer = TokenSealer(SECRET, PASS)
    for space_id in ("", "s" * (MAX_SPACE_ID_BYTES + 1)):
        with pytest.raises(ValueError, match="space id"):
            sealer.seal(space_id, 1, 1)
