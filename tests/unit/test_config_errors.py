"""Configuration errors are coded and name the key and the file (issue 15, findings 4, 8 and 12):
a missing ``--config`` is an error, not the defaults; a broken file is SFV-100 naming it; relative
paths in the file are relative to the file's folder, never to the working folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_settings
from engine.errors import ConfigError, PathUnusable


def test_a_missing_config_file_named_on_the_command_line_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PathUnusable, match="no such config file") as err:
        load_settings(tmp_path / "typo.toml")
    assert err.value.code == "SFV-102" and str(tmp_path / "typo.toml") in str(err.value)


def test_a_missing_sfvault_config_variable_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SFVAULT_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(PathUnusable):
        load_settings()


def test_no_file_at_the_default_path_keeps_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SFVAULT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_settings().api_port == 8400


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"\x00\xff\xfe binary", "is not valid TOML"),
        (b"[sfvault\nx = 1\n", "is not valid TOML"),
        (b'sfvault = "string"\n', r"`sfvault` must be a table"),
        (b'[sfvault]\napi_port = "abc"\n', r"`api_port`"),
        (b"[sfvault]\nchunk_target_bytes = -1\n", r"`chunk_target_bytes`: Input should be greater than 0"),
        (b"[sfvault]\njob = 3\n", r"`job`"),
    ],
    ids=["binary", "syntax", "sfvault-string", "wrong-type", "out-of-range", "table-expected"],
)
def test_a_broken_file_is_one_coded_error_naming_the_file_and_key(
    tmp_path: Path, body: bytes, match: str
) -> None:
    cfg = tmp_path / "sfvault.toml"
    cfg.write_bytes(body)
    with pytest.raises(ConfigError, match=match) as err:
        load_settings(cfg)
    assert err.value.code == "SFV-100" and str(cfg) in str(err.value)


def test_a_directory_or_special_file_as_config_is_refused(tmp_path: Path) -> None:
    for path in (tmp_path, Path("/dev/null")):
        with pytest.raises(PathUnusable, match="not a regular file"):
            load_settings(path)


def test_relative_paths_resolve_from_the_file_folder_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    cfg = etc / "sfvault.toml"
    cfg.write_text(
        "[sfvault]\n"
        'repository_url = "data/repo"\n'
        'key_file = "kek.key"\n'
        'catalog_url = "sqlite:///data/catalog.db"\n'
        'scratch_dir = "scratch"\n'
        'export_dir = "/abs/exports"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings(cfg)
    assert s.repository_url == str(etc / "data" / "repo")
    assert s.key_file == etc / "kek.key"
    assert s.catalog_url == f"sqlite:///{etc / 'data' / 'catalog.db'}"
    assert s.scratch_dir == etc / "scratch"
    assert s.export_dir == Path("/abs/exports")  # absolute stays


def test_urls_and_environment_values_are_not_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "sfvault.toml"
    cfg.write_text(
        '[sfvault]\nrepository_url = "az://container/prefix"\ncatalog_url = "sqlite:////abs/c.db"\n'
    )
    monkeypatch.setenv("SFVAULT_KEY_FILE", "rel.key")
    s = load_settings(cfg)
    assert s.repository_url == "az://container/prefix" and s.catalog_url == "sqlite:////abs/c.db"
    assert s.key_file == Path("rel.key")  # the environment is the caller's, relative to its folder
