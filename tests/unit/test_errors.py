import pickle

import pytest

from engine.errors import SfvaultError, all_error_classes


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
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
    codes = [c.code for c in all_error_classes()]
    assert len(codes) == len(set(codes))


def test_template_is_filled_from_details() -> None:
    from engine.errors import ObjectCorrupt

    err = ObjectCorrupt(name="chunks/3f/3f9a")
    assert err.message == "chunks/3f/3f9a failed authentication (altered or damaged)"
    assert err.to_dict()["code"] == "SFV-311"
