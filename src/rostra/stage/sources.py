"""Icecast source passwords: one per space, derived from the deployment's signing secret, so every
node of a deployment (and `rostra space source` where the data folder is) computes the same one
without storing it.

Stage plane. The password is HMAC-SHA256 of the space id under a key of its own label; it is
compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

# A label makes the source key differ from every other key derived from the same signing secret.
KEY_LABEL = b"rostra/stage/icecast-source/v1"
# 18 bytes: 144 bits, 24 URL-safe characters with no padding (fits a URL's userinfo as it is)
PASSWORD_BYTES = 18
SOURCE_USER = "source"


def source_password(signing_secret: str, space_id: str) -> str:
    key = hmac.digest(signing_secret.encode(), KEY_LABEL, hashlib.sha256)
    tag = hmac.digest(key, space_id.encode(), hashlib.sha256)[:PASSWORD_BYTES]
    return base64.urlsafe_b64encode(tag).decode("ascii")


def is_source_password(signing_secret: str, space_id: str, given: str) -> bool:
    expected = source_password(signing_secret, space_id)
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
