"""Key-encryption keys (KEK): they wrap the repository's data keys and never live in the repository.

Two providers share the :class:`KekProvider` protocol:

* :class:`LocalKeyFile` (default): a 32-byte random key in a small JSON file created by
  ``sfvault init`` with mode 0600 (its folder 0700). Wrapping is AES-256-GCM with a random nonce
  and the repository id as associated data. The repository ``config`` records a fingerprint
  (HMAC-SHA256(kek, "sfvault kek fingerprint"), 16 hex characters), so a wrong key file is
  reported as ``WrongKey`` rather than as a damaged config.
* :class:`AzureKeyVaultKek`: an RSA key in Azure Key Vault, used through
  ``azure.keyvault.keys.crypto.CryptographyClient.wrap_key``/``unwrap_key`` (RSA-OAEP-256) with
  ``DefaultAzureCredential``. The key never leaves the vault; the config records its key id.
  (Documented and type-checked; not exercised against a real vault in the test suite.)

The config stores ``reference()`` (no secrets); :func:`kek_for_reference` picks the provider back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretBytes

from engine.errors import (
    ConfigError,
    KeyFileInsecure,
    KeyFileInvalid,
    KeyFileMissing,
    KeyProviderError,
    ObjectCorrupt,
    WrongKey,
)

KEY_FILE_FORMAT = "sfvault-key"
KEY_FILE_VERSION = 1


class KekProvider(Protocol):
    """Wraps and unwraps the data-key blob of a repository."""

    kind: str

    def reference(self) -> dict[str, Any]:
        """What the config records to find this key again (never secret)."""
        ...

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, aad: bytes, reference: dict[str, Any], *, repo: str) -> bytes:
        """Unwrap; ``WrongKey`` when this is not the key of ``reference``, ``ObjectCorrupt`` when
        the wrapped bytes were altered."""
        ...


class LocalKeyFile:
    """A KEK held in a local file (mode 0600)."""

    kind = "keyfile"

    def __init__(self, path: Path, kek: SecretBytes) -> None:
        self.path = path
        self._kek = kek

    def __repr__(self) -> str:
        return f"LocalKeyFile(path={str(self.path)!r})"

    @property
    def fingerprint(self) -> str:
        mac = hmac.new(self._kek.get_secret_value(), b"sfvault kek fingerprint", hashlib.sha256)
        return mac.hexdigest()[:16]

    @classmethod
    def create(cls, path: Path) -> LocalKeyFile:
        """Create a new random key file; refuses to overwrite one (``ConfigError``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        kek = os.urandom(32)
        body = json.dumps(
            {"format": KEY_FILE_FORMAT, "version": KEY_FILE_VERSION, "kek": base64.b64encode(kek).decode()}
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(what=f"key file {path} already exists; refusing to overwrite it") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(body + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(path, 0o600)
        return cls(path, SecretBytes(kek))

    @classmethod
    def load(cls, path: Path) -> LocalKeyFile:
        """Read a key file. ``KeyFileMissing``, ``KeyFileInsecure`` (group/other bits set) or
        ``KeyFileInvalid``."""
        path = Path(path)
        try:
            st = path.stat()
            raw = path.read_text()
        except FileNotFoundError:
            raise KeyFileMissing(path=str(path)) from None
        except OSError as err:
            raise KeyFileInvalid(path=str(path), what=err.strerror or type(err).__name__) from None
        except UnicodeDecodeError:
            raise KeyFileInvalid(path=str(path), what="not text (a binary file)") from None
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileInsecure(path=str(path))
        try:
            doc = json.loads(raw)
            if doc.get("format") != KEY_FILE_FORMAT:
                raise ValueError("not an sfvault key file")
            if doc.get("version") != KEY_FILE_VERSION:
                raise ValueError(f"unsupported key file version {doc.get('version')!r}")
            kek = base64.b64decode(doc["kek"], validate=True)
            if len(kek) != 32:
                raise ValueError("the key is not 32 bytes")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise KeyFileInvalid(path=str(path), what=str(err) or type(err).__name__) from None
        return cls(path, SecretBytes(kek))

    @classmethod
    def load_or_create(cls, path: Path) -> LocalKeyFile:
        return cls.load(path) if Path(path).exists() else cls.create(path)

    def reference(self) -> dict[str, Any]:
        return {"provider": self.kind, "fingerprint": self.fingerprint}

    def export_doc(self) -> dict[str, Any]:
        """The key file's document (it holds the key: only for a key backup file, mode 0600)."""
        return {
            "format": KEY_FILE_FORMAT,
            "version": KEY_FILE_VERSION,
            "kek": base64.b64encode(self._kek.get_secret_value()).decode(),
        }

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self._kek.get_secret_value()).encrypt(nonce, plaintext, aad)

    def unwrap(self, wrapped: bytes, aad: bytes, reference: dict[str, Any], *, repo: str) -> bytes:
        if reference.get("provider") != self.kind:
            raise WrongKey(repo=repo)
        if not hmac.compare_digest(str(reference.get("fingerprint", "")), self.fingerprint):
            raise WrongKey(repo=repo)
        try:
            return AESGCM(self._kek.get_secret_value()).decrypt(wrapped[:12], wrapped[12:], aad)
        except InvalidTag:
            raise ObjectCorrupt(name="config (wrapped data keys)") from None


class AzureKeyVaultKek:
    """A KEK in Azure Key Vault (RSA-OAEP-256 wrap/unwrap through ``CryptographyClient``).

    Args:
        key_id: the versioned key URL, ``https://<vault>.vault.azure.net/keys/<name>/<version>``.
        credential: an azure-identity credential; ``DefaultAzureCredential()`` when None.

    The repository id travels inside the wrapped blob (RSA-OAEP has no associated data), and
    ``DataKeys.from_bytes`` checks it, so a blob moved from another repository is refused.
    """

    kind = "azure-keyvault"
    algorithm = "RSA-OAEP-256"

    def __init__(self, key_id: str, credential: Any | None = None) -> None:
        self.key_id = key_id
        self._credential = credential
        self._client: Any = None

    def __repr__(self) -> str:
        return f"AzureKeyVaultKek(key_id={self.key_id!r})"

    def _crypto(self) -> Any:
        if self._client is None:
            from azure.identity import DefaultAzureCredential
            from azure.keyvault.keys.crypto import CryptographyClient

            self._client = CryptographyClient(self.key_id, self._credential or DefaultAzureCredential())
        return self._client

    def reference(self) -> dict[str, Any]:
        return {"provider": self.kind, "key_id": self.key_id, "algorithm": self.algorithm}

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        from azure.keyvault.keys.crypto import KeyWrapAlgorithm

        try:
            return bytes(self._crypto().wrap_key(KeyWrapAlgorithm.rsa_oaep_256, plaintext).encrypted_key)
        except Exception as err:
            raise _map_vault_error(err, self.key_id) from err

    def unwrap(self, wrapped: bytes, aad: bytes, reference: dict[str, Any], *, repo: str) -> bytes:
        from azure.core.exceptions import HttpResponseError
        from azure.keyvault.keys.crypto import KeyWrapAlgorithm

        if reference.get("provider") != self.kind or reference.get("key_id") != self.key_id:
            raise WrongKey(repo=repo)
        try:
            return bytes(self._crypto().unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped).key)
        except HttpResponseError as err:
            if err.status_code == 400:  # the vault could not decrypt: not wrapped by this key
                raise WrongKey(repo=repo) from err
            raise _map_vault_error(err, self.key_id) from err
        except Exception as err:
            raise _map_vault_error(err, self.key_id) from err


def _map_vault_error(err: Exception, key_id: str) -> KeyProviderError:
    status = getattr(err, "status_code", None)
    return KeyProviderError(kind="azure-keyvault", what=f"{type(err).__name__} (HTTP {status}) for {key_id}")


def kek_for_reference(reference: dict[str, Any], *, key_file: Path) -> KekProvider:
    """The provider a repository's config asks for: the local key file, or the Key Vault key it names."""
    provider = reference.get("provider")
    if provider == LocalKeyFile.kind:
        return LocalKeyFile.load(key_file)
    if provider == AzureKeyVaultKek.kind:
        return AzureKeyVaultKek(str(reference["key_id"]))
    raise ConfigError(what=f"unknown key provider {provider!r} in the repository config")
