"""HLS for listeners (RFC 8216): playlists and the packager that writes CMAF segments.

Media plane.
"""

from rostra.media.hls.playlist import SegmentRef, master_playlist, media_playlist

__all__ = ["SegmentRef", "master_playlist", "media_playlist"]
