"""Credential sealing: vendor secrets are encrypted before they touch the database.

A sealed value is a compact text token ``v1.<kid>.<b64url nonce>.<b64url ciphertext+tag>``,
encrypted with AES-256-GCM under the key named ``kid``. The associated data (``aad``) binds the
token to the record that owns it, e.g. ``f"integration:{integration.id}"``: a token copied into
another row does not open there, so a database write cannot move one customer's credentials to
another integration.

Keys rotate without a migration: the sealer knows every key still in use and seals with the active
one; ``needs_rotation`` / ``reseal`` let a background job move old tokens to the active key, after
which the old key can be dropped from the configuration.

Configuration (one environment variable, e.g. ``SOC_SEALING_KEYS``)::

    k2024:<base64 of 32 bytes>,k2025:<base64 of 32 bytes>     # first key is active
    k2024:<base64 of 32 bytes>,!k2025:<base64 of 32 bytes>    # "!" marks the active key

Key ids are short names made of letters, digits, ``_`` and ``-``. Make a key with
``python -c "from soc_shared.crypto import generate_key; print(generate_key())"``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SealError", "Sealer", "generate_key", "mask"]

_VERSION = "v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SealError(Exception):
    """A value could not be sealed or opened, or the key configuration is wrong.

    Messages name the key id at most: never the plaintext, the token or key material.
    """


def generate_key() -> str:
    """A fresh random AES-256 key, base64-encoded for the key configuration."""
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


def mask(secret: str | None) -> str:
    """The form of a secret shown to people: ``••••abcd``.

    At most the last four characters are kept, and fewer for shorter secrets (never more than a
    quarter of it); secrets under eight characters show nothing but the dots. The number of dots
    is fixed so the mask does not reveal the length.
    """
    if not secret:
        return ""
    shown = 0 if len(secret) < 8 else min(4, len(secret) // 4)
    return "••••" + (secret[-shown:] if shown else "")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decode_key(kid: str, text: str) -> bytes:
    text = text.strip()
    # Accept both alphabets: keys pasted from other tools are often URL-safe base64.
    normalised = text.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(normalised + "=" * (-len(normalised) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SealError(f"sealing key {kid!r} is not valid base64") from None
    if len(raw) != _KEY_BYTES:
        raise SealError(f"sealing key {kid!r} must be {_KEY_BYTES} bytes (AES-256), got {len(raw)}")
    return raw


class Sealer:
    """Seals and opens secrets with AES-256-GCM under one of several rotating keys."""

    def __init__(self, keys: dict[str, bytes], active_kid: str) -> None:
        if not keys:
            raise SealError("no sealing keys configured")
        for kid, key in keys.items():
            if not _KID.match(kid):
                raise SealError(f"sealing key id {kid!r} must be 1-64 letters, digits, '_' or '-'")
            if len(key) != _KEY_BYTES:
                raise SealError(f"sealing key {kid!r} must be {_KEY_BYTES} bytes (AES-256), got {len(key)}")
        if active_kid not in keys:
            raise SealError(f"active sealing key {active_kid!r} is not among the configured keys")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active_kid = active_kid

    @classmethod
    def from_env_value(cls, value: str) -> Sealer:
        """Parse ``"kid1:<base64>,kid2:<base64>"``; the first key is active unless ``!`` marks another."""
        keys: dict[str, bytes] = {}
        marked: list[str] = []
        entries = [entry.strip() for entry in (value or "").split(",") if entry.strip()]
        if not entries:
            raise SealError("no sealing keys configured: expected 'kid:<base64 key>[,kid:<base64 key>...]'")
        for position, entry in enumerate(entries, start=1):
            kid, sep, material = entry.partition(":")
            kid = kid.strip()
            is_active = kid.startswith("!")
            kid = kid.removeprefix("!").strip()
            if not sep or not kid or not material.strip():
                # The entry itself may be a bare key: report its position, never its text.
                raise SealError(f"sealing key entry #{position} must look like 'kid:<base64 key>'")
            if not _KID.match(kid):
                raise SealError(f"sealing key id {kid!r} must be 1-64 letters, digits, '_' or '-'")
            if kid in keys:
                raise SealError(f"sealing key id {kid!r} appears more than once")
            keys[kid] = _decode_key(kid, material)
            if is_active:
                marked.append(kid)
        if len(marked) > 1:
            raise SealError(f"more than one sealing key is marked active with '!': {', '.join(marked)}")
        return cls(keys, marked[0] if marked else next(iter(keys)))

    @property
    def active_kid(self) -> str:
        return self._active_kid

    @property
    def kids(self) -> list[str]:
        return list(self._ciphers)

    def seal(self, plaintext: bytes | str | dict[str, Any], aad: str) -> str:
        """Encrypt under the active key, bound to ``aad`` (the owning record, e.g. ``integration:<id>``)."""
        if isinstance(plaintext, dict):
            data = json.dumps(plaintext, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        elif isinstance(plaintext, str):
            data = plaintext.encode("utf-8")
        elif isinstance(plaintext, bytes | bytearray):
            data = bytes(plaintext)
        else:
            raise SealError(f"cannot seal a {type(plaintext).__name__}: expected bytes, str or dict")
        # A random 96-bit nonce per seal: safe for far more values than one key will ever seal.
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._active_kid].encrypt(nonce, data, aad.encode("utf-8"))
        return f"{_VERSION}.{self._active_kid}.{_b64url(nonce)}.{_b64url(sealed)}"

    def open(self, token: str, aad: str) -> bytes:
        """Decrypt a token sealed with the same ``aad``; any mismatch or tampering raises ``SealError``."""
        kid, nonce, sealed = self._parse(token)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealError(f"sealed value uses unknown key {kid!r}; is the key still configured?")
        try:
            return cipher.decrypt(nonce, sealed, aad.encode("utf-8"))
        except InvalidTag:
            raise SealError(
                f"sealed value does not open with key {kid!r}: it was tampered with or belongs to another record"
            ) from None

    def open_json(self, token: str, aad: str) -> dict[str, Any]:
        """Open a token sealed from a dict."""
        data = self.open(token, aad)
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SealError("sealed value is not a JSON object") from None
        if not isinstance(value, dict):
            raise SealError("sealed value is not a JSON object")
        return value

    def needs_rotation(self, token: str) -> bool:
        """True when the token was sealed with a key other than the active one."""
        kid, _, _ = self._parse(token)
        return kid != self._active_kid

    def reseal(self, token: str, aad: str) -> str:
        """Re-encrypt under the active key (a new nonce too); a token already current is returned as is."""
        if not self.needs_rotation(token):
            return token
        return self.seal(self.open(token, aad), aad)

    @staticmethod
    def _parse(token: str) -> tuple[str, bytes, bytes]:
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 4:
            raise SealError("not a sealed value: expected 'v1.<kid>.<nonce>.<ciphertext>'")
        version, kid, nonce_text, sealed_text = parts
        if version != _VERSION:
            raise SealError(f"unsupported sealed value version {version[:8]!r}")
        if not _KID.match(kid):
            raise SealError("sealed value is corrupt: bad key id")
        try:
            nonce, sealed = _unb64url(nonce_text), _unb64url(sealed_text)
        except (binascii.Error, ValueError):
            raise SealError("sealed value is corrupt: not base64url") from None
        # 16 bytes is the GCM tag alone (an empty secret); anything shorter was cut.
        if len(nonce) != _NONCE_BYTES or len(sealed) < 16:
            raise SealError("sealed value is corrupt: wrong nonce or ciphertext length")
        return kid, nonce, sealed


def reseal_column(
    database_url: str,
    table: Any,
    id_column: str,
    sealed_column: str,
    aad_of: Any,
    sealer: Sealer,
) -> tuple[int, int, list[Any]]:
    """Re-seal every value of ``table.sealed_column`` still under an older key with the active one.

    One transaction with the rows locked, so a concurrent writer waits rather than losing its
    value; returns ``(resealed, total, ids of values that do not open)`` — those are left as they
    are and reported (a key missing from the configuration, or a corrupt value). Run after making a new key active with ``!``; once it
    reports 0 left to do everywhere, the old key can leave the configuration."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    resealed = total = 0
    unreadable: list[Any] = []
    try:
        with engine.begin() as conn:
            id_col, sealed_col = table.c[id_column], table.c[sealed_column]
            rows = conn.execute(
                sa.select(id_col, sealed_col).where(sealed_col.is_not(None)).with_for_update()
            ).all()
            for row_id, token in rows:
                total += 1
                try:
                    if not sealer.needs_rotation(token):
                        continue
                    fresh = sealer.reseal(token, aad_of(row_id))
                except SealError:
                    unreadable.append(row_id)
                    continue
                conn.execute(sa.update(table).where(id_col == row_id).values({sealed_column: fresh}))
                resealed += 1
    finally:
        engine.dispose()
    return resealed, total, unreadable
