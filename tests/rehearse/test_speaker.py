"""The command-line speaker finds its WHIP endpoint and ICE servers from the server, never from a
public default."""

from __future__ import annotations

import pytest

from rostra.rehearse.speaker import SpeakError, parse_ice_links, whip_target


def test_invite_link_gives_the_whip_endpoint_and_token() -> None:
    target = whip_target("https://audio.example.org/speak/abcdefgh1234?invite=tok.en.x")
    assert target.endpoint == "https://audio.example.org/whip/abcdefgh1234"
    assert target.token == "tok.en.x"
    host = whip_target("http://127.0.0.1:8080/host/abcdefgh1234?token=h.o.st")
    assert host.token == "h.o.st"
    with pytest.raises(SpeakError, match="not an invite link"):
        whip_target("http://127.0.0.1:8080/listen/abcdefgh1234")


def test_ice_servers_come_from_the_whip_link_header() -> None:
    header = (
        '<stun:stun.example.org:3478>; rel="ice-server", '
        '<turn:turn.example.org:3478>; rel="ice-server"; username="u"; credential="p"; '
        'credential-type="password", <https://example.org/x>; rel="other"'
    )
    servers = parse_ice_links(header)
    assert [s.urls for s in servers] == ["stun:stun.example.org:3478", "turn:turn.example.org:3478"]
    assert (servers[1].username, servers[1].credential) == ("u", "p")
    assert parse_ice_links("") == []
