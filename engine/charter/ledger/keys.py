"""Ed25519 keys: files, identifiers, and signatures over context-prefixed messages.

Private keys live in files (PEM, PKCS#8, mode 0600), never in the database. A key id is
``ed25519:`` followed by the hex SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._text import echo
from ..errors import CharterError
from .auditor import AUTOMATIC_ACTOR, verify_signature
from .auditor import key_id_for as key_id_of

__all__ = ["SigningKey", "key_id_of", "load_public_key_file", "raw_public", "verify_signature"]


#: Key files are a few hundred bytes; anything much larger is not a key.
_MAX_KEY_FILE = 64 * 1024

_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}")
_ORIGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")


def check_principal(principal: str) -> str:
    """`principal` if it is a usable name (letters, digits, ``._@+-``; no spaces or slashes).

    Raises:
        CharterError: ``bad_principal`` otherwise.
    """
    if not _PRINCIPAL.fullmatch(principal):
        raise CharterError.single("bad_principal", f"principal {echo(principal, 80)} must be 1-200 letters, digits or "
                                  "._@+-, starting with a letter or digit (no spaces, no slashes)")
    if principal == AUTOMATIC_ACTOR:
        raise CharterError.single("bad_principal", f"{principal!r} is the name the log gives its own acts; choose "
                                  "another principal")
    return principal


def check_origin(origin: str) -> str:
    """`origin` if it is a usable log name (like ``acme.example/charter``: no spaces or control characters).

    Raises:
        CharterError: ``bad_origin`` otherwise.
    """
    if not _ORIGIN.fullmatch(origin):
        raise CharterError.single("bad_origin", f"--origin {echo(origin, 80)} ({len(origin)} characters) must be 1-200 "
                                  "letters, digits or ._:/@+- (no spaces)")
    return origin


def raw_public(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class SigningKey:
    """A private key with the principal it belongs to."""

    principal: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> bytes:
        """Raw public key bytes."""
        return raw_public(self.private.public_key())

    @property
    def key_id(self) -> str:
        """The key id of the public key."""
        return key_id_of(self.public)

    def sign(self, context: bytes, message: bytes) -> str:
        """Base64 Ed25519 signature over ``context || message``."""
        return base64.b64encode(self.private.sign(context + message)).decode("ascii")

    @classmethod
    def generate(cls, principal: str) -> SigningKey:
        """A fresh key for `principal` (a principal name or a log origin)."""
        if not (_PRINCIPAL.fullmatch(principal) or _ORIGIN.fullmatch(principal)):
            check_principal(principal)
        return cls(principal, Ed25519PrivateKey.generate())

    def save(self, path: Path) -> Path:
        """Write the private key (PEM) to `path` with mode 0600, and the public key beside it (``.pub``).

        Returns:
            The path of the public key file.
        """
        pem = self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        header = f"# charter key for principal: {self.principal}\n".encode()
        public_path = path.with_suffix(".pub")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(header + pem)
            public_path.write_text(f"{self.principal} {base64.b64encode(self.public).decode()}\n",
                                   encoding="utf-8")
        except FileExistsError as exc:
            raise CharterError.single("key_exists", "a key file already exists; refusing to overwrite",
                                      file=str(exc.filename or path)) from exc
        except OSError as exc:
            raise CharterError.single("key_file", f"cannot write key file: {exc.strerror or exc}",
                                      file=str(exc.filename or path)) from exc
        return public_path

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read a key file written by `save`.

        Raises:
            CharterError: ``key_file`` when the file is missing or not an Ed25519 private key.
        """
        from .._sources import read_bytes  # here, not at the top: _sources imports yaml, which reading ledgers skips

        try:
            data = read_bytes(path, _MAX_KEY_FILE)
        except CharterError as exc:
            raise CharterError.single("key_file", f"cannot read key file: {exc.diagnostics[0].message}",
                                      file=str(path)) from exc
        principal = ""
        first = data.split(b"\n", 1)[0]
        if first.startswith(b"# charter key for principal: "):
            principal = first.split(b":", 1)[1].strip().decode("utf-8", "replace")
        try:
            key = serialization.load_pem_private_key(data[data.find(b"-----BEGIN"):], password=None)
        except (ValueError, TypeError) as exc:
            raise CharterError.single("key_file", "not a PEM private key", file=str(path)) from exc
        except UnsupportedAlgorithm as exc:
            raise CharterError.single("key_file", "not an Ed25519 private key (its algorithm is not supported)",
                                      file=str(path)) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise CharterError.single("key_file", f"not an Ed25519 private key (got {type(key).__name__})",
                                      file=str(path))
        return cls(principal, key)


def load_public_key_file(path: Path) -> tuple[str, bytes]:
    """Read ``PRINCIPAL BASE64`` from a ``.pub`` file.

    Raises:
        CharterError: ``key_file`` when the file does not hold one 32-byte key.
    """
    from .._sources import read_bytes

    try:
        principal, encoded = read_bytes(path, _MAX_KEY_FILE).decode("utf-8").split()
        public = base64.b64decode(encoded, validate=True)
    except CharterError as exc:
        raise CharterError.single("key_file", f"cannot read key file: {exc.diagnostics[0].message}",
                                  file=str(path)) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CharterError.single("key_file", "expected 'PRINCIPAL BASE64-PUBLIC-KEY'", file=str(path)) from exc
    if len(public) != 32:
        raise CharterError.single("key_file", f"public key is {len(public)} bytes, expected 32", file=str(path))
    return principal, public
