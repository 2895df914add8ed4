import importlib
import pickle
import pkgutil

import pytest

import engine
from engine.errors import SfvaultError, all_error_classes


def _import_every_engine_module() -> list[type[SfvaultError]]:
    """Subpackages may define their own errors (engine/jobs/errors.py ...): load them all."""
    for mod in pkgutil.walk_packages(engine.__path__, "engine."):
        if ".migrations" not in mod.name and not mod.name.startswith("engine.cli"):
            importlib.import_module(mod.name)
    return all_error_classes()


ALL_ERRORS = _import_every_engine_module()


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_code_and_message(cls: type[SfvaultError]) -> None:
    err = cls(name="chunks/ab/abcd", what="boom", path="/x", repo="r", kind="org", status=503,
              sf_code="X", object="Account", remaining=1, limit=2, version=9, supported=1,
              holder="h", since="t", url="u", size=1, expected=2, by="m")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert back.message == err.message
    assert back.details == err.details
    assert str(back).startswith(f"[{cls.code}] ")


def test_error_codes_are_unique() -> None:
    codes = [c.code for c in ALL_ERRORS]
    assert len(codes) == len(set(codes))


def test_template_is_filled_from_details() -> None:
    from engine.errors import ObjectCorrupt

    err = ObjectCorrupt(name="chunks/3f/3f9a")
    assert err.message == "chunks/3f/3f9a failed authentication (altered or damaged)"
    assert err.to_dict()["code"] == "SFV-311"


def test_every_code_has_an_entry_in_the_troubleshooting_guide() -> None:
    from pathlib import Path

    guide = (Path(__file__).parents[2] / "docs" / "TROUBLESHOOTING.md").read_text()
    headings = {line.split()[1] for line in guide.splitlines() if line.startswith("## SFV-")}
    missing = sorted(f"{c.code} {c.__name__}" for c in ALL_ERRORS if c.code not in headings)
    assert not missing, f"add these codes to docs/TROUBLESHOOTING.md: {missing}"
