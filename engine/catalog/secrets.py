"""Sealing secrets before they reach the catalog.

The catalog stores org credentials and export passwords only as sealed blobs. Whoever writes
them passes a :class:`Sealer`; the associated data binds a blob to the row it belongs to, so a
blob copied onto another org does not open. :class:`AesGcmSealer` is the implementation over a
32-byte key (where that key comes from, e.g. derived from the repository's key-encryption key,
is the caller's decision).
"""

from __future__ import annotations

import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import SealedSecretUnreadable

SEALED_VERSION = b"\x01"
NONCE_BYTES = 12


class Sealer(Protocol):
    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes: ...

    def open(self, sealed: bytes, *, aad: bytes) -> bytes: ...


class AesGcmSealer:
    """AES-256-GCM: ``version || nonce || ciphertext+tag``. The key never appears in its repr."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("AesGcmSealer needs a 32-byte key")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "AesGcmSealer(<key hidden>)"

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return SEALED_VERSION + nonce + self._aead.encrypt(nonce, plaintext, SEALED_VERSION + aad)

    def open(self, sealed: bytes, *, aad: bytes) -> bytes:
        version, nonce, body = sealed[:1], sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        if version != SEALED_VERSION:
            raise SealedSecretUnreadable(name=aad.decode(errors="replace"))
        try:
            return self._aead.decrypt(nonce, body, version + aad)
        except InvalidTag as exc:
            raise SealedSecretUnreadable(name=aad.decode(errors="replace")) from exc
