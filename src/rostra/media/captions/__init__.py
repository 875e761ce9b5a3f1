"""Live captions of the program: offline speech recognition in its own process, served as a
WebVTT subtitles rendition, a live document and the replay's document.

Media plane.
"""

from rostra.media.captions.webvtt import Cue, webvtt_document, webvtt_segment

__all__ = ["Cue", "webvtt_document", "webvtt_segment"]
