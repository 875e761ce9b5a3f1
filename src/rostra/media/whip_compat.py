"""What Rostra answers to the media broadcast software offers beside a voice over WHIP.

OBS's WHIP output always offers its video beside its audio (an OBS output is audio and video).
Rostra takes one voice per connection, so every other media section is answered `inactive`:
aiortc then neither receives nor decodes it (a video receiver it starts decodes every frame into
a queue that nothing here would read, growing without bound).

Media plane. Works on the transceivers of an applied offer, before the answer is made.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiortc import RTCRtpTransceiver

INACTIVE = "inactive"


def decline_all_but_the_voice(
    transceivers: Iterable[RTCRtpTransceiver], voice: RTCRtpTransceiver
) -> None:
    """Answer every media section but the voice's `inactive`."""
    for transceiver in transceivers:
        if transceiver is not voice:
            transceiver.direction = INACTIVE
