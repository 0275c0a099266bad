"""Presigned download URLs: signing them for answers, checking them on the storage site."""

from __future__ import annotations

import hashlib
import hmac

from ._state import Recording

__all__ = ["UrlSigner"]


class UrlSigner:
    """Builds and checks presigned download URLs (HMAC-SHA256 over id, kind, expiry)."""

    def __init__(self, secret: bytes, base_url: str = "") -> None:
        self._secret = secret
        self.base_url = base_url

    def signature(self, recording_id: str, kind: str, expires: int) -> str:
        """Hex HMAC for a (recording, kind, expiry epoch seconds) triple."""
        msg = f"{recording_id}\n{kind}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def url(self, recording_id: str, kind: str, expires: int) -> str:
        """Full presigned URL on the storage site."""
        sig = self.signature(recording_id, kind, expires)
        return f"{self.base_url}/files/{recording_id}/{kind}?X-Expires={expires}&X-Signature={sig}"

    def url_for(self, rec: Recording, kind: str) -> str:
        """The presigned URL of one of a recording's files, valid until its expiry."""
        return self.url(rec.id, kind, (rec.expiry_ms or 0) // 1000)

    def verify(self, recording_id: str, kind: str, expires: str, signature: str) -> bool:
        """Whether ``signature`` is valid for these values (constant-time)."""
        if not expires.isdigit():
            return False
        return hmac.compare_digest(self.signature(recording_id, kind, int(expires)), signature)
