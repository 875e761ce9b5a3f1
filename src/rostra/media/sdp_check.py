"""A structural check of a WHIP SDP offer (RFC 8866, RFC 8839 candidates, RFC 9725), before
aiortc sees it: aiortc asserts or fails on attributes rather than reporting them, so every rule it
relies on is checked here first and named in an `InvalidSdp` detail.

Media plane. Pure: text in, an error or nothing out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rostra.errors import InvalidSdp

MAX_LINES = 2_000
MAX_MEDIA_SECTIONS = 8
MAX_PORT = 65_535
MAX_PAYLOAD_TYPE = 127
MAX_SSRC = 2**32 - 1
MAX_EXTMAP_ID = 255
MAX_COMPONENT = 256
MEDIA_KINDS = frozenset({"audio", "video", "application", "text", "message"})
CANDIDATE_TYPES = frozenset({"host", "srflx", "prflx", "relay"})
CANDIDATE_TRANSPORTS = frozenset({"udp", "tcp"})
SETUP_ROLES = frozenset({"actpass", "active", "passive", "holdconn"})
ADDRESS_TYPES = frozenset({"IP4", "IP6"})
# a=candidate: foundation component transport priority address port "typ" type [name value]…
CANDIDATE_FIXED_FIELDS = 8
OPUS_RTPMAP = "opus/48000"
# each ICE and DTLS attribute must be present, in the audio section or at session level
REQUIRED_TRANSPORT = ("ice-ufrag", "ice-pwd", "fingerprint", "setup")

_LINE = re.compile(r"[a-z]=")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FINGERPRINT = re.compile(r"[A-Za-z0-9-]+ [0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})+")


@dataclass(slots=True)
class _Section:
    kind: str
    line_no: int
    formats: list[str]
    is_rtp: bool
    attributes: dict[str, list[str]] = field(default_factory=dict)


def _int(text: str, what: str, line_no: int, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit():
        raise InvalidSdp(f"line {line_no}: {what} '{text[:20]}' is not a number")
    if len(text) > len(str(high)):  # and never int() on thousands of digits
        raise InvalidSdp(f"line {line_no}: {what} {text[:20]} is outside {low}..{high}")
    value = int(text)
    if not low <= value <= high:
        raise InvalidSdp(f"line {line_no}: {what} {value} is outside {low}..{high}")
    return value


def _media(value: str, line_no: int) -> _Section:
    fields = value.split()
    if len(fields) < 4:
        raise InvalidSdp(
            f"line {line_no}: 'm={value[:40]}' needs a media kind, a port, a protocol and formats"
        )
    kind, port, proto, formats = fields[0], fields[1], fields[2], fields[3:]
    if kind not in MEDIA_KINDS:
        raise InvalidSdp(f"line {line_no}: media kind '{kind[:20]}' is not one SDP knows")
    if "/" in port and not port.split("/", 1)[0].isdigit():
        raise InvalidSdp(
            f"line {line_no}: 'm={value[:40]}' has no port (between the media kind and the"
            " protocol)"
        )
    _int(port.split("/", 1)[0], "the media port", line_no, 0, MAX_PORT)
    is_rtp = "RTP" in proto
    if is_rtp:
        for payload_type in formats:
            _int(payload_type, "payload type", line_no, 0, MAX_PAYLOAD_TYPE)
    return _Section(kind=kind, line_no=line_no, formats=formats, is_rtp=is_rtp)


def _candidate(value: str, line_no: int) -> None:
    fields = value.split()
    if len(fields) < CANDIDATE_FIXED_FIELDS or fields[6] != "typ":
        raise InvalidSdp(
            f"line {line_no}: 'a=candidate:{value[:40]}' is truncated: it needs foundation,"
            " component, transport, priority, address, port, 'typ' and a type"
        )
    _int(fields[1], "candidate component", line_no, 1, MAX_COMPONENT)
    if fields[2].lower() not in CANDIDATE_TRANSPORTS:
        raise InvalidSdp(f"line {line_no}: candidate transport '{fields[2][:10]}' is not udp/tcp")
    _int(fields[3], "candidate priority", line_no, 0, MAX_SSRC)
    _int(fields[5], "candidate port", line_no, 0, MAX_PORT)
    if fields[7] not in CANDIDATE_TYPES:
        raise InvalidSdp(f"line {line_no}: candidate type '{fields[7][:10]}' is not one ICE knows")
    extensions = fields[CANDIDATE_FIXED_FIELDS:]
    if len(extensions) % 2:
        raise InvalidSdp(
            f"line {line_no}: candidate extension '{extensions[-1][:20]}' has no value"
        )
    for name, text in zip(extensions[::2], extensions[1::2], strict=True):
        if name in ("rport", "generation", "network-id", "network-cost"):
            _int(text, f"candidate {name}", line_no, 0, MAX_SSRC)


def _first(value: str) -> str:
    return value.split(" ", 1)[0]


def _rtpmap(value: str, line_no: int) -> None:
    _int(_first(value), "a=rtpmap payload type", line_no, 0, MAX_PAYLOAD_TYPE)
    parts = (value.split(" ", 1)[1] if " " in value else "").split("/")
    if len(parts) < 2 or not parts[0]:
        raise InvalidSdp(f"line {line_no}: a=rtpmap '{value[:40]}' needs NAME/RATE")
    _int(parts[1], "a=rtpmap clock rate", line_no, 1, 10_000_000)
    if len(parts) > 2:
        _int(parts[2], "a=rtpmap channels", line_no, 1, 255)


def _fmtp(value: str, line_no: int) -> None:
    _int(_first(value), "a=fmtp payload type", line_no, 0, MAX_PAYLOAD_TYPE)


def _rtcp_fb(value: str, line_no: int) -> None:
    if _first(value) != "*":
        _int(_first(value), "a=rtcp-fb payload type", line_no, 0, MAX_PAYLOAD_TYPE)


def _ssrc(value: str, line_no: int) -> None:
    _int(_first(value), "a=ssrc", line_no, 0, MAX_SSRC)


def _ssrc_group(value: str, line_no: int) -> None:
    for ssrc in value.split()[1:]:
        _int(ssrc, "a=ssrc-group ssrc", line_no, 0, MAX_SSRC)


def _extmap(value: str, line_no: int) -> None:
    _int(_first(value).split("/", 1)[0], "a=extmap id", line_no, 1, MAX_EXTMAP_ID)


def _setup(value: str, line_no: int) -> None:
    if value not in SETUP_ROLES:
        raise InvalidSdp(f"line {line_no}: a=setup '{value[:20]}' is not a DTLS role")


def _fingerprint(value: str, line_no: int) -> None:
    if not _FINGERPRINT.fullmatch(value):
        raise InvalidSdp(f"line {line_no}: a=fingerprint '{value[:40]}' is not 'HASH XX:XX:…'")


def _port(value: str, line_no: int) -> None:
    _int(_first(value), "the port of an attribute", line_no, 0, MAX_PORT)


def _size(value: str, line_no: int) -> None:
    _int(_first(value), "a=max-message-size", line_no, 0, 2**31 - 1)


def _not_empty(value: str, line_no: int) -> None:
    if not value.strip():
        raise InvalidSdp(f"line {line_no}: an a=mid, a=ice-ufrag or a=ice-pwd is empty")


# the attributes aiortc parses with int() or by index, checked the same way first
_ATTRIBUTE_CHECKS: dict[str, Callable[[str, int], None]] = {
    "rtpmap": _rtpmap,
    "fmtp": _fmtp,
    "rtcp-fb": _rtcp_fb,
    "candidate": _candidate,
    "ssrc": _ssrc,
    "ssrc-group": _ssrc_group,
    "extmap": _extmap,
    "setup": _setup,
    "fingerprint": _fingerprint,
    "rtcp": _port,
    "sctp-port": _port,
    "max-message-size": _size,
    "mid": _not_empty,
    "ice-ufrag": _not_empty,
    "ice-pwd": _not_empty,
}


def _connection(value: str, line_no: int) -> None:
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ADDRESS_TYPES:
        raise InvalidSdp(f"line {line_no}: 'c={value[:40]}' is not 'IN IP4|IP6 ADDRESS'")


def _parse(sdp: str) -> tuple[dict[str, list[str]], list[_Section]]:
    lines = [line.rstrip("\r") for line in sdp.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) > MAX_LINES:
        raise InvalidSdp(f"the SDP offer has {len(lines)} lines; at most {MAX_LINES}")
    if not lines or lines[0] != "v=0":
        raise InvalidSdp("the body is not an SDP offer: it must start with 'v=0'")
    session: dict[str, list[str]] = {}
    sections: list[_Section] = []
    for line_no, line in enumerate(lines, start=1):
        if not _LINE.match(line):
            raise InvalidSdp(f"line {line_no}: '{line[:40]}' is not of the form 'x=value'")
        kind, value = line[0], line[2:]
        if kind == "m":
            sections.append(_media(value, line_no))
            if len(sections) > MAX_MEDIA_SECTIONS:
                raise InvalidSdp(f"the SDP offer has more than {MAX_MEDIA_SECTIONS} media sections")
        elif kind == "c":
            _connection(value, line_no)
        elif kind == "a":
            name, _, attribute = value.partition(":")
            current = sections[-1] if sections else None
            check = _ATTRIBUTE_CHECKS.get(name)
            if check is not None:
                check(attribute, line_no)
            target = current.attributes if current is not None else session
            target.setdefault(name, []).append(attribute)
    return session, sections


def _check_sections(session: dict[str, list[str]], sections: list[_Section]) -> None:
    if not sections:
        raise InvalidSdp("the SDP offer has no media section: it needs one 'm=audio'")
    audio = [s for s in sections if s.kind == "audio"]
    if sections[0].kind != "audio":
        raise InvalidSdp(
            f"the first media section (line {sections[0].line_no}) is {sections[0].kind}:"
            " a WHIP offer to Rostra starts with its audio"
        )
    if len(audio) > 1:
        raise InvalidSdp(
            f"the SDP offer has {len(audio)} audio sections (lines"
            f" {', '.join(str(s.line_no) for s in audio)}); Rostra takes one voice per connection"
        )
    voice = audio[0]
    if not voice.is_rtp:
        raise InvalidSdp(f"the audio section (line {voice.line_no}) is not RTP")
    rtpmaps = [value.split(" ", 1) for value in voice.attributes.get("rtpmap", [])]
    if not any(
        pt in voice.formats and codec.lower().startswith(OPUS_RTPMAP) for pt, codec in rtpmaps
    ):
        raise InvalidSdp(f"the audio section (line {voice.line_no}) offers no Opus ({OPUS_RTPMAP})")
    for name in REQUIRED_TRANSPORT:
        if name not in voice.attributes and name not in session:
            raise InvalidSdp(f"the SDP offer has no a={name} for its audio section")
    mids = [mid for s in sections for mid in s.attributes.get("mid", [])]
    repeated = sorted({mid for mid in mids if mids.count(mid) > 1})
    if repeated:
        raise InvalidSdp(f"media id(s) {', '.join(repeated)[:40]} name more than one section")
    for group in session.get("group", []):
        unknown = [mid for mid in group.split()[1:] if mid not in mids]
        if unknown:
            raise InvalidSdp(f"a=group:{group[:40]} names unknown media id {unknown[0][:20]}")


def check_offer(sdp: str) -> None:
    """Raise `InvalidSdp` naming the first rule the offer breaks; return when it may go on."""
    if _CONTROL.search(sdp):
        raise InvalidSdp("the SDP offer holds a control character")
    session, sections = _parse(sdp)
    _check_sections(session, sections)
