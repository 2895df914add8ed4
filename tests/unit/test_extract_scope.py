"""Scope rules and describe parsing."""

from __future__ import annotations

from typing import Any

from engine.extract.model import ObjectSpec
from engine.extract.scope import ScopeRules, decide, plan_object, select_objects


def g(name: str, **kw: Any) -> ObjectSpec:
    d: dict[str, Any] = {"name": name, "queryable": True, "retrieveable": True, "replicateable": True}
    d.update(kw)
    return ObjectSpec.from_describe(d)


def f(name: str, type_: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **kw}


def test_object_rules() -> None:
    rules = ScopeRules(excluded=frozenset({"Lead"}))
    assert decide(g("Account"), rules).included
    assert not decide(g("Lead"), rules).included
    assert not decide(g("X", queryable=False), rules).included
    assert not decide(g("Y", retrieveable=False), rules).included
    assert not decide(g("AccountChangeEvent", associateEntityType="ChangeEvent"), rules).included
    assert not decide(g("Thing__e"), rules).included
    assert not decide(g("ContentDocumentLink"), rules).included
    assert not decide(g("AccountFeed", associateEntityType="Feed"), rules).included
    assert decide(g("AccountFeed", associateEntityType="Feed"), ScopeRules(include_feed=True)).included
    assert not decide(g("AccountShare"), rules).included
    assert decide(g("AccountShare"), ScopeRules(include_share=True)).included
    assert decide(g("AccountHistory"), rules).included
    assert not decide(g("AccountHistory"), ScopeRules(include_history=False)).included
    only = ScopeRules(only=frozenset({"account"}))
    assert [d.name for d in select_objects([g("Contact"), g("Account")], only) if d.included] == ["Account"]


def test_fields_compound_blob_and_permissions() -> None:
    spec = ObjectSpec.from_describe(
        {
            "name": "Attachment", "queryable": True, "retrieveable": True,
            "fields": [
                f("Name", "string"), f("Id", "id"), f("Body", "base64"), f("BodyLength", "int"),
                f("BillingAddress", "address"),
                f("BillingCity", "string", compoundFieldName="BillingAddress"),
                f("Secret__c", "string"), f("Amount", "currency", precision=18, scale=2),
            ],
        }
    )  # fmt: skip
    plan = plan_object(spec, ScopeRules(), lambda s: {"Secret__c": "no read permission", "Hidden__c": ""})
    assert plan.field_names == ["Id", "Name", "BodyLength", "BillingCity", "Amount"]
    assert plan.blob_fields == ("Body",)
    assert plan.path == "rest"  # Attachment is not supported by Bulk
    reasons = {s.name: s.reason for s in plan.skipped}
    assert set(reasons) == {"Body", "BillingAddress", "Secret__c", "Hidden__c"}
    assert reasons["Hidden__c"] == "not readable by the backup user"
    assert plan_object(g("Account", fields=[f("Id", "id")]), ScopeRules()).path == "bulk2"
    learned = ScopeRules().with_rest_only("Account")
    assert plan_object(g("Account", fields=[f("Id", "id")]), learned).path == "rest"


def test_cursor_field_choice() -> None:
    a = g("A", fields=[f("Id", "id"), f("LastModifiedDate", "datetime"), f("SystemModstamp", "datetime")])
    assert a.cursor_field == "SystemModstamp"
    h = g("AH", fields=[f("Id", "id"), f("CreatedDate", "datetime")])
    assert h.cursor_field == "CreatedDate"
    assert g("N", fields=[f("Id", "id")]).cursor_field is None
