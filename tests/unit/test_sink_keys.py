"""Key-encryption keys: the local key file provider (the Key Vault one is checked for its reference)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.errors import (
    ConfigError,
    KeyFileInsecure,
    KeyFileInvalid,
    KeyFileMissing,
    ObjectCorrupt,
    WrongKey,
)
from engine.sink.keys import AzureKeyVaultKek, LocalKeyFile, kek_for_reference


def test_key_file_is_created_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "repo.key"
    kek = LocalKeyFile.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = LocalKeyFile.load(path)
    assert again.fingerprint == kek.fingerprint
    wrapped = kek.wrap(b"data keys", b"aad")
    assert again.unwrap(wrapped, b"aad", kek.reference(), repo="r") == b"data keys"
    assert "kek" not in repr(kek).lower().replace("localkeyfile", "")
    with pytest.raises(ConfigError):
        LocalKeyFile.create(path)


def test_missing_insecure_and_invalid_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileMissing) as err:
        LocalKeyFile.load(tmp_path / "nope.key")
    assert "nope.key" in str(err.value) and err.value.code == "SFV-301"
    path = tmp_path / "k.key"
    LocalKeyFile.create(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileInsecure):
        LocalKeyFile.load(path)
    bad = tmp_path / "bad.key"
    bad.write_text("not json")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileInvalid):
        LocalKeyFile.load(bad)


def test_another_key_is_wrong_key_and_altered_wrapping_is_corrupt(tmp_path: Path) -> None:
    a = LocalKeyFile.create(tmp_path / "a.key")
    b = LocalKeyFile.create(tmp_path / "b.key")
    wrapped = a.wrap(b"keys", b"aad")
    with pytest.raises(WrongKey):
        b.unwrap(wrapped, b"aad", a.reference(), repo="r")
    damaged = bytearray(wrapped)
    damaged[-1] ^= 1
    with pytest.raises(ObjectCorrupt):
        a.unwrap(bytes(damaged), b"aad", a.reference(), repo="r")


def test_providers_are_found_from_the_config_reference(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    kek = LocalKeyFile.create(path)
    assert isinstance(kek_for_reference(kek.reference(), key_file=path), LocalKeyFile)
    vault = AzureKeyVaultKek("https://v.vault.azure.net/keys/sfvault/0123")
    ref = vault.reference()
    assert ref == {
        "provider": "azure-keyvault",
        "key_id": "https://v.vault.azure.net/keys/sfvault/0123",
        "algorithm": "RSA-OAEP-256",
    }
    found = kek_for_reference(ref, key_file=path)
    assert isinstance(found, AzureKeyVaultKek) and found.key_id == vault.key_id
    with pytest.raises(WrongKey):
        vault.unwrap(b"x", b"", kek.reference(), repo="r")  # refused before any network call
    with pytest.raises(ConfigError):
        kek_for_reference({"provider": "hsm"}, key_file=path)
