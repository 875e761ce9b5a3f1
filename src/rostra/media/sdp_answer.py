"""The Opus format parameters of Rostra's WHIP answer (RFC 7587 §7): what a speaker's encoder is
asked for — full-band mono at a set average bitrate, in-band FEC on, DTX off.

Media plane, pure text: an SDP answer in, the same answer with each audio section's Opus `a=fmtp`
line rewritten out. Only the answer's text changes, so only the remote sender is affected: the
receive side decodes every packet whatever its parameters (Rostra's own jitter buffer and libopus).
"""

from __future__ import annotations

import re

# RFC 7587 §6.1: maxaveragebitrate is 6000 to 510000 bit/s
MIN_OPUS_BITRATE_BPS = 6_000
MAX_OPUS_BITRATE_BPS = 510_000
OPUS_PTIME_MIN_MS = 10
FULL_BAND_RATE_HZ = 48_000

_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+opus/", re.IGNORECASE)
_FMTP = re.compile(r"^a=fmtp:(\d+)(?:\s+(.*))?$")


def opus_answer_parameters(bitrate_bps: int) -> dict[str, str]:
    """The parameters Rostra asks of a speaker, in the order they are written."""
    if not MIN_OPUS_BITRATE_BPS <= bitrate_bps <= MAX_OPUS_BITRATE_BPS:
        raise ValueError(
            f"an Opus average bitrate of {bitrate_bps} bit/s is outside RFC 7587's "
            f"{MIN_OPUS_BITRATE_BPS}-{MAX_OPUS_BITRATE_BPS}"
        )
    return {
        "minptime": str(OPUS_PTIME_MIN_MS),
        "useinbandfec": "1",
        "usedtx": "0",
        "maxaveragebitrate": str(bitrate_bps),
        "maxplaybackrate": str(FULL_BAND_RATE_HZ),
        "stereo": "0",
        "sprop-stereo": "0",
    }


def _fmtp_value(existing: str, wanted: dict[str, str]) -> str:
    """Rostra's parameters first, then those already there that it does not set."""
    kept: list[str] = []
    for part in existing.split(";"):
        item = part.strip()
        if not item:
            continue
        key = item.split("=", 1)[0].strip().lower()
        if key not in wanted:
            kept.append(item)
    return ";".join([f"{key}={value}" for key, value in wanted.items()] + kept)


def _rewrite_section(lines: list[str], wanted: dict[str, str]) -> list[str]:
    """One audio media section: every Opus payload type gets Rostra's fmtp line."""
    opus_types = [m.group(1) for line in lines if (m := _RTPMAP.match(line))]
    if not opus_types:
        return lines
    out: list[str] = []
    written: set[str] = set()
    for line in lines:
        fmtp = _FMTP.match(line)
        if fmtp is not None and fmtp.group(1) in opus_types:
            payload_type = fmtp.group(1)
            if payload_type in written:
                continue  # a second fmtp line for one payload type: the first one now says all
            out.append(f"a=fmtp:{payload_type} {_fmtp_value(fmtp.group(2) or '', wanted)}")
            written.add(payload_type)
            continue
        out.append(line)
    for payload_type in opus_types:
        if payload_type in written:
            continue
        rtpmap = next(i for i, line in enumerate(out) if _is_rtpmap_of(line, payload_type))
        out.insert(rtpmap + 1, f"a=fmtp:{payload_type} {_fmtp_value('', wanted)}")
    return out


def _is_rtpmap_of(line: str, payload_type: str) -> bool:
    match = _RTPMAP.match(line)
    return match is not None and match.group(1) == payload_type


def ask_for_full_band_opus(sdp: str, *, bitrate_bps: int) -> str:
    """The answer with Rostra's Opus parameters in every audio section; other sections, other
    codecs, line ends and a missing final line end are kept as they were."""
    wanted = opus_answer_parameters(bitrate_bps)
    line_end = "\r\n" if "\r\n" in sdp else "\n"
    has_final_end = sdp.endswith(line_end)
    lines = sdp.split(line_end)
    if has_final_end:
        lines.pop()
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    out = list(sections[0])
    for section in sections[1:]:
        is_audio = section[0].startswith("m=audio ")
        out += _rewrite_section(section, wanted) if is_audio else section
    return line_end.join(out) + (line_end if has_final_end else "")
