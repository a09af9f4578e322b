"""Secrets at rest (payment provider API keys, webhook secrets): AES-256-GCM under a key derived from
``SCRAWN_SECRET`` with HKDF-SHA256. The row a value belongs to is bound as associated data, so a sealed value
copied into another project's row does not open."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1:"


class SecretBox:
    def __init__(self, server_secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"scrawn secretbox v1").derive(
            server_secret.encode()
        )
        self._aead = AESGCM(key)
        # A separate key for signatures, so a tag never doubles as an encryption key or the other way round.
        self._mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"scrawn hmac v1").derive(
            server_secret.encode()
        )

    def sign(self, message: bytes, purpose: str) -> bytes:
        """HMAC-SHA256 of ``message`` for ``purpose``: tokens the server hands out and later checks."""
        return hmac.new(self._mac_key, purpose.encode() + b"\0" + message, hashlib.sha256).digest()

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(_VERSION):
            raise ValueError("not a sealed secret")
        raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag:
            raise ValueError("the sealed secret does not open: SCRAWN_SECRET changed?") from None
