"""One configuration surface for backup jobs: every ``JobOptions`` knob from ``[sfvault.job]`` or
``SFVAULT_JOB__*``, the environment winning key by key, the defaults kept in ``JobOptions`` alone."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.config import JobSettings, load_settings
from engine.errors import ConfigError
from engine.jobs.planning import JobOptions

DOCS = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"


def test_every_job_knob_is_a_setting_and_nothing_else_is() -> None:
    assert set(JobSettings.model_fields) == {f.name for f in dataclasses.fields(JobOptions)}


def test_every_job_knob_is_documented_in_operations() -> None:
    text = DOCS.read_text()
    table = text[text.index("## Job settings") :]
    for f in dataclasses.fields(JobOptions):
        assert re.search(rf"^\| `{f.name}` \|", table, re.M), f"{f.name} missing from OPERATIONS.md"


def test_nothing_set_keeps_every_default() -> None:
    assert JobOptions.from_settings(JobSettings()) == JobOptions()


def test_file_then_environment_then_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "sfvault.toml"
    cfg.write_text(
        "[sfvault]\n"
        'repository_url = "repo"\n'
        "[sfvault.job]\n"
        "page_rows = 1000\n"
        "cursor_lag = 60\n"
        "file_bodies = false\n"
    )
    monkeypatch.setenv("SFVAULT_JOB__PAGE_ROWS", "2000")
    monkeypatch.setenv("SFVAULT_JOB__TARGET_ROWS", "8000")
    settings = load_settings(cfg)
    opts = JobOptions.from_settings(settings.job, blob_threads=3)
    assert opts.page_rows == 2000  # the environment wins over the file
    assert opts.target_rows == 8000
    assert opts.cursor_lag == timedelta(seconds=60)
    assert opts.file_bodies is False and opts.blob_threads == 3
    assert opts.max_bisect_depth == JobOptions().max_bisect_depth  # untouched knobs keep the default


def test_a_key_that_is_not_a_knob_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "sfvault.toml"
    cfg.write_text("[sfvault.job]\npage_row = 1000\n")
    with pytest.raises(ConfigError, match=r"`job\.page_row`.*") as err:  # a coded error naming key and file
        load_settings(cfg)
    assert str(cfg) in str(err.value)


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        JobSettings(page_rows=0)
    with pytest.raises(ValidationError):
        JobSettings(cursor_lag=timedelta(seconds=-1))
