"""The emulated schema and the describe JSON built from it (SALESFORCE_API.md §2.2, §2.3)."""

from __future__ import annotations

import pytest

from emulator.schema import (
    FIELD_TYPES,
    FieldDef,
    build_schema,
    describe_global,
    describe_object,
    find_object,
    object_for_id,
)

GLOBAL_KEYS = {
    "activateable", "associateEntityType", "associateParentEntity", "createable", "custom", "customSetting",
    "deepCloneable", "deletable", "deprecatedAndHidden", "feedEnabled", "hasSubtypes", "isInterface",
    "isSubtype", "keyPrefix", "label", "labelPlural", "layoutable", "mergeable", "mruEnabled", "name",
    "queryable", "replicateable", "retrieveable", "searchable", "triggerable", "undeletable", "updateable",
    "urls",
}  # fmt: skip
FIELD_KEYS = {
    "aggregatable", "aiPredictionField", "autoNumber", "byteLength", "calculated", "calculatedFormula",
    "cascadeDelete", "caseSensitive", "compoundFieldName", "controllerName", "createable", "custom",
    "defaultValue", "defaultValueFormula", "defaultedOnCreate", "dependentPicklist", "deprecatedAndHidden",
    "digits", "displayLocationInDecimal", "encrypted", "externalId", "extraTypeInfo", "filterable",
    "filteredLookupInfo", "formulaTreatNullNumberAsZero", "groupable", "highScaleNumber", "htmlFormatted",
    "idLookup", "inlineHelpText", "label", "length", "mask", "maskType", "name", "nameField", "namePointing",
    "nillable", "permissionable", "picklistValues", "polymorphicForeignKey", "precision", "queryByDistance",
    "referenceTargetField", "referenceTo", "relationshipName", "relationshipOrder", "restrictedDelete",
    "restrictedPicklist", "scale", "searchPrefilterable", "soapType", "sortable", "type", "unique",
    "updateable", "writeRequiresMasterRead",
}  # fmt: skip

SCHEMA = build_schema()


def test_objects_present_with_real_key_prefixes() -> None:
    expected = {
        "Account": "001",
        "Contact": "003",
        "Lead": "00Q",
        "Opportunity": "006",
        "Case": "500",
        "Task": "00T",
        "Event": "00U",
        "User": "005",
        "Profile": "00e",
        "PermissionSet": "0PS",
        "Attachment": "00P",
        "Document": "015",
        "ContentVersion": "068",
        "ContentDocument": "069",
        "StaticResource": "081",
        "EventLogFile": "0AT",
        "Organization": "00D",
        "Invoice__c": "a00",
        "Shipment__c": "a01",
    }
    for name, prefix in expected.items():
        assert SCHEMA[name].key_prefix == prefix
    for name in (
        "PermissionSetAssignment",
        "ObjectPermissions",
        "FieldPermissions",
        "ContentDocumentLink",
        "AccountFeed",
        "AccountShare",
        "AccountHistory",
    ):
        assert name in SCHEMA


def test_audit_fields_and_system_modstamp_quirks() -> None:
    for name in ("Account", "Contact", "Task", "Invoice__c"):
        obj = SCHEMA[name]
        for f in (
            "Id",
            "IsDeleted",
            "CreatedDate",
            "CreatedById",
            "LastModifiedDate",
            "LastModifiedById",
            "SystemModstamp",
        ):
            assert obj.field(f) is not None, (name, f)
        assert obj.has_system_modstamp and obj.cursor_field == "SystemModstamp"
    share, history = SCHEMA["AccountShare"], SCHEMA["AccountHistory"]
    assert not share.has_system_modstamp and share.cursor_field == "LastModifiedDate"
    assert not history.has_system_modstamp and history.cursor_field == "CreatedDate"
    assert SCHEMA["ContentDocumentLink"].requires_filter
    assert not SCHEMA["Attachment"].bulk_supported and SCHEMA["Attachment"].blob_field == "Body"
    assert SCHEMA["ContentVersion"].blob_field == "VersionData"


def test_custom_objects_cover_every_common_field_type() -> None:
    types = {f.type for o in SCHEMA.values() if o.custom for f in o.fields}
    assert {
        "string",
        "textarea",
        "picklist",
        "multipicklist",
        "currency",
        "percent",
        "double",
        "date",
        "datetime",
        "time",
        "boolean",
        "email",
        "phone",
        "url",
        "reference",
        "location",
    } <= types
    assert len(build_schema(5)) == len(SCHEMA) + 3
    with pytest.raises(ValueError):
        build_schema(0)


def test_field_types_are_describe_types_only() -> None:
    for obj in SCHEMA.values():
        for f in obj.fields:
            assert f.type in FIELD_TYPES
    with pytest.raises(ValueError):
        FieldDef("X", "anyType")


def test_find_object_and_field_are_case_insensitive() -> None:
    assert find_object(SCHEMA, "account") is SCHEMA["Account"]
    assert find_object(SCHEMA, "INVOICE__C") is SCHEMA["Invoice__c"]
    assert find_object(SCHEMA, "Nope") is None
    assert SCHEMA["Account"].field("systemmodstamp").name == "SystemModstamp"  # type: ignore[union-attr]
    assert SCHEMA["Contact"].relationship("account").name == "AccountId"  # type: ignore[union-attr]
    assert object_for_id(SCHEMA, "001gD0000000001QAA") is SCHEMA["Account"]


def test_describe_global_entries_have_every_flag() -> None:
    body = describe_global(SCHEMA, "59.0")
    assert body["encoding"] == "UTF-8" and body["maxBatchSize"] == 200
    for entry in body["sobjects"]:
        assert set(entry) == GLOBAL_KEYS
        assert entry["urls"]["rowTemplate"] == f"/services/data/v59.0/sobjects/{entry['name']}/{{ID}}"
    feed = next(e for e in body["sobjects"] if e["name"] == "AccountFeed")
    assert feed["associateEntityType"] == "Feed" and feed["associateParentEntity"] == "Account"


def test_describe_object_fields_compounds_and_fls() -> None:
    body = describe_object(SCHEMA["Account"], "61.0", SCHEMA)
    names = [f["name"] for f in body["fields"]]
    assert "Tax_Id__c" not in names  # FLS-hidden
    assert SCHEMA["Account"].field("Tax_Id__c") is not None
    for f in body["fields"]:
        assert set(f) == FIELD_KEYS
    by_name = {f["name"]: f for f in body["fields"]}
    assert by_name["BillingAddress"]["type"] == "address"
    assert by_name["BillingCity"]["compoundFieldName"] == "BillingAddress"
    assert by_name["OwnerId"]["referenceTo"] == ["User"] and by_name["OwnerId"]["relationshipName"] == "Owner"
    assert by_name["CreatedDate"]["soapType"] == "xsd:dateTime"
    assert by_name["Id"]["type"] == "id"
    assert any(
        c["childSObject"] == "Contact" and c["field"] == "AccountId" for c in body["childRelationships"]
    )
    inv = {f["name"]: f for f in describe_object(SCHEMA["Invoice__c"], "59.0")["fields"]}
    assert inv["Location__c"]["type"] == "location"
    assert inv["Location__Latitude__s"]["compoundFieldName"] == "Location__c"
    assert [p["value"] for p in inv["Status__c"]["picklistValues"]][:2] == ["Draft", "Sent"]
