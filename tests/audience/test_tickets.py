"""Listener tickets: issued, verified, and rejected when forged, tampered, expired or misplaced."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rostra.audience.tickets import KEY_LABEL, MAX_TOKEN_CHARS, TAG_BYTES, TicketSigner
from rostra.errors import (
    Forbidden,
    TicketExpired,
    TicketInvalid,
    TicketWrongSpace,
    Unauthorized,
)

SECRET = "deployment-signing-secret-0123456789"
SPACE = "abcdefgh1234"
NOW_S = 1_800_000_000
TTL_S = 3_600
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_."

signer = TicketSigner(SECRET)


def issued_token(space_id: str = SPACE) -> str:
    return signer.issue(space_id, now_s=NOW_S, ttl_s=TTL_S).token


def test_ticket_round_trips() -> None:
    issued = signer.issue(SPACE, now_s=NOW_S + 0.9, ttl_s=TTL_S)
    ticket = signer.verify(issued.token, SPACE, now_s=NOW_S + 10)
    assert ticket == issued.ticket
    assert (ticket.space_id, ticket.issued_at_s, ticket.expires_at_s) == (
        SPACE,
        NOW_S,
        NOW_S + TTL_S,
    )
    assert len(ticket.listener_id) == 32
    assert len(issued.token) <= MAX_TOKEN_CHARS


def test_every_node_with_the_shared_secret_verifies_the_ticket() -> None:
    other_node = TicketSigner(SECRET)
    assert other_node.verify(issued_token(), SPACE, now_s=NOW_S).space_id == SPACE


def test_each_join_gets_a_new_listener_id() -> None:
    first = signer.issue(SPACE, now_s=NOW_S, ttl_s=TTL_S).ticket
    second = signer.issue(SPACE, now_s=NOW_S, ttl_s=TTL_S).ticket
    assert first.listener_id != second.listener_id


def test_renewal_across_expiry_keeps_the_listener_id() -> None:
    old = signer.issue(SPACE, now_s=NOW_S, ttl_s=TTL_S).ticket
    renewed = signer.renew(old, now_s=NOW_S + TTL_S - 60, ttl_s=TTL_S)
    later_s = NOW_S + TTL_S + 60
    with pytest.raises(TicketExpired):
        signer.verify(signer.issue(SPACE, now_s=NOW_S, ttl_s=TTL_S).token, SPACE, now_s=later_s)
    assert signer.verify(renewed.token, SPACE, now_s=later_s).listener_id == old.listener_id


def test_ticket_signed_with_another_secret_is_rejected_as_invalid() -> None:
    forged = TicketSigner("another-deployment-secret").issue(SPACE, now_s=NOW_S, ttl_s=TTL_S)
    with pytest.raises(TicketInvalid, match="forged or tampered"):
        signer.verify(forged.token, SPACE, now_s=NOW_S)


def _tag(key: bytes, signed: str) -> str:
    digest = hmac.digest(key, signed.encode(), hashlib.sha256)[:TAG_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_ticket_key_is_derived_from_the_secret_with_a_label() -> None:
    signed, _, tag = issued_token().rpartition(".")
    assert tag != _tag(SECRET.encode(), signed), "the raw secret must not key tickets"
    assert tag == _tag(hmac.digest(SECRET.encode(), KEY_LABEL, hashlib.sha256), signed)


def test_every_single_character_tamper_is_rejected() -> None:
    token = issued_token()
    for position, original in enumerate(token):
        for replacement in TOKEN_ALPHABET:
            if replacement == original:
                continue
            tampered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(TicketInvalid):
                signer.verify(tampered, SPACE, now_s=NOW_S)


def test_truncated_or_extended_ticket_is_rejected() -> None:
    token = issued_token()
    for cut in range(len(token)):
        with pytest.raises(TicketInvalid):
            signer.verify(token[:cut], SPACE, now_s=NOW_S)
    for suffix in ("A", ".", "==", ".AAAA"):
        with pytest.raises(TicketInvalid):
            signer.verify(token + suffix, SPACE, now_s=NOW_S)


def test_expired_ticket_is_rejected_as_expired() -> None:
    token = issued_token()
    assert signer.verify(token, SPACE, now_s=NOW_S + TTL_S - 1)
    with pytest.raises(TicketExpired) as caught:
        signer.verify(token, SPACE, now_s=NOW_S + TTL_S)
    assert isinstance(caught.value, Unauthorized)
    assert token not in caught.value.detail, "a ticket is never written out whole"


def test_ticket_of_another_space_is_forbidden() -> None:
    with pytest.raises(TicketWrongSpace) as caught:
        signer.verify(issued_token("zzzzzzzz9999"), SPACE, now_s=NOW_S)
    assert isinstance(caught.value, Forbidden)


@pytest.mark.parametrize(
    "garbage",
    ["", "v1", "v1.", "v1..", "v1.AAAA.AAAA", "v2.abc.def", "Bearer x", "é" * 40, "v1.\x00.\x00"],
)
def test_garbage_is_rejected_as_invalid(garbage: str) -> None:
    with pytest.raises(TicketInvalid):
        signer.verify(garbage, SPACE, now_s=NOW_S)


@settings(database=None)  # no example database left in the work tree
@given(st.text(max_size=200))
def test_any_text_is_rejected_as_invalid(text: str) -> None:
    with pytest.raises(TicketInvalid):
        signer.verify(text, SPACE, now_s=NOW_S)


@settings(database=None)
@given(st.data())
def test_any_edit_of_a_valid_ticket_is_rejected(data: st.DataObject) -> None:
    token = issued_token()
    start = data.draw(st.integers(0, len(token)))
    end = data.draw(st.integers(start, min(len(token), start + 8)))
    insert = data.draw(st.text(alphabet=TOKEN_ALPHABET, max_size=8))
    edited = token[:start] + insert + token[end:]
    if edited == token:
        return
    with pytest.raises(TicketInvalid):
        signer.verify(edited, SPACE, now_s=NOW_S)


def test_longest_space_id_fits_and_longer_is_refused() -> None:
    longest = "s" * 64
    issued = signer.issue(longest, now_s=NOW_S, ttl_s=TTL_S)
    assert len(issued.token) <= MAX_TOKEN_CHARS
    assert signer.verify(issued.token, longest, now_s=NOW_S).space_id == longest
    with pytest.raises(ValueError, match="space id"):
        signer.issue("s" * 65, now_s=NOW_S, ttl_s=TTL_S)


@pytest.mark.parametrize("listener_id", ["", "zz" * 16, "ab" * 15, "ab" * 17])
def test_malformed_listener_id_is_refused_at_issue(listener_id: str) -> None:
    with pytest.raises(ValueError, match=r"listener id|non-hexadecimal"):
        signer.issue(SPACE, now_s=NOW_S, ttl_s=TTL_S, listener_id=listener_id)


def test_signer_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="signing secret"):
        TicketSigner("")
