"""The emulated org's schema: objects, fields, and the describe JSON built from them.

Field ``type`` values are Salesforce describe types only (SALESFORCE_API.md §2.3). Compound
fields (``address``, ``location``) and blob fields (``base64``) have no column of their own in
the store: compounds are assembled from their component fields, blobs live beside the row.
A field with ``readable=False`` is hidden by field-level security from the integration user:
it is absent from describe and SOQL that names it fails with ``INVALID_FIELD``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.ids import KEY_PREFIXES, custom_key_prefix

FIELD_TYPES = frozenset(
    {
        "id", "string", "textarea", "picklist", "multipicklist", "currency", "percent", "double",
        "int", "date", "datetime", "time", "boolean", "email", "phone", "url", "reference",
        "base64", "address", "location",
    }
)  # fmt: skip

SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "textarea": "xsd:string",
    "picklist": "xsd:string",
    "multipicklist": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "url": "xsd:string",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "double": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "time": "xsd:time",
    "boolean": "xsd:boolean",
    "base64": "xsd:base64Binary",
    "address": "urn:address",
    "location": "urn:location",
}

TEXT_TYPES = frozenset({"string", "textarea", "picklist", "multipicklist", "email", "phone", "url"})
NUMBER_TYPES = frozenset({"currency", "percent", "double", "int"})
ID_TYPES = frozenset({"id", "reference"})
COMPOUND_TYPES = frozenset({"address", "location"})
AUDIT_FIELDS = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp")

# address JSON keys (REST) -> component suffix (e.g. "Billing" + "City")
ADDRESS_COMPONENTS = (
    ("street", "Street"),
    ("city", "City"),
    ("state", "State"),
    ("postalCode", "PostalCode"),
    ("country", "Country"),
    ("latitude", "Latitude"),
    ("longitude", "Longitude"),
    ("geocodeAccuracy", "GeocodeAccuracy"),
)
ADDRESS_KEYS = (
    "city", "country", "countryCode", "geocodeAccuracy", "latitude", "longitude", "postalCode",
    "state", "stateCode", "street",
)  # fmt: skip


@dataclass(frozen=True)
class FieldDef:
    """One field of an sObject, with the flags describe reports."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    custom: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist_values: tuple[str, ...] = ()
    compound_field_name: str | None = None
    readable: bool = True
    createable: bool = True
    updateable: bool = True
    filterable: bool = True
    sortable: bool = True
    groupable: bool = True
    aggregatable: bool = True
    calculated: bool = False
    auto_number: bool = False
    name_field: bool = False
    external_id: bool = False
    unique: bool = False
    id_lookup: bool = False
    defaulted_on_create: bool = False
    permissionable: bool = False
    digits: int = 0

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"{self.name}: not a describe type: {self.type}")

    @property
    def has_column(self) -> bool:
        """True when the store keeps this field in a column of the object's table."""
        return self.type not in COMPOUND_TYPES and self.type != "base64"

    @property
    def soap_type(self) -> str:
        return SOAP_TYPES[self.type]

    @property
    def polymorphic(self) -> bool:
        return len(self.reference_to) > 1


@dataclass(frozen=True)
class ObjectDef:
    """One sObject: its describe flags and fields (``fields`` in describe order)."""

    name: str
    label: str
    label_plural: str
    key_prefix: str | None
    fields: tuple[FieldDef, ...]
    custom: bool = False
    queryable: bool = True
    retrieveable: bool = True
    replicateable: bool = True
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    bulk_supported: bool = True
    requires_filter: bool = False
    blob_field: str | None = None
    has_system_modstamp: bool = True
    associate_entity_type: str | None = None
    associate_parent_entity: str | None = None
    feed_enabled: bool = False
    searchable: bool = True
    custom_setting: bool = False
    _by_name: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` (case-insensitive), readable or not, or None."""
        return self._by_name.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is ``name`` (case-insensitive)."""
        low = name.lower()
        for f in self.fields:
            if f.relationship_name is not None and f.relationship_name.lower() == low:
                return f
        return None

    @property
    def readable_fields(self) -> tuple[FieldDef, ...]:
        return tuple(f for f in self.fields if f.readable)

    @property
    def column_fields(self) -> tuple[FieldDef, ...]:
        """Fields with a column in the store (everything but compounds and blobs)."""
        return tuple(f for f in self.fields if f.has_column)

    @property
    def has_is_deleted(self) -> bool:
        return self.field("IsDeleted") is not None

    @property
    def cursor_field(self) -> str | None:
        """SystemModstamp, else LastModifiedDate, else CreatedDate (what getUpdated uses)."""
        for name in ("SystemModstamp", "LastModifiedDate", "CreatedDate"):
            if self.field(name) is not None:
                return name
        return None


# ---------------------------------------------------------------------------------------------
# field helpers


def _label(name: str) -> str:
    base = name.removesuffix("__c").removesuffix("Id") if name.endswith("Id") and name != "Id" else name
    base = base.removesuffix("__c").replace("_", " ")
    out = []
    for i, ch in enumerate(base):
        if i and ch.isupper() and base[i - 1].islower():
            out.append(" ")
        out.append(ch)
    return "".join(out) or name


def _f(name: str, type_: str, **kw: Any) -> FieldDef:
    kw.setdefault("label", _label(name))
    custom = name.endswith("__c")
    kw.setdefault("custom", custom)
    if type_ in TEXT_TYPES and "length" not in kw:
        kw["length"] = {"textarea": 32000, "multipicklist": 4099, "email": 80, "phone": 40}.get(type_, 255)
    if type_ == "url" and kw.get("length") == 255:
        kw["length"] = 255
    if type_ == "currency":
        kw.setdefault("precision", 18)
        kw.setdefault("scale", 2)
    if type_ == "percent":
        kw.setdefault("precision", 5)
        kw.setdefault("scale", 2)
    if type_ == "double":
        kw.setdefault("precision", 18)
        kw.setdefault("scale", 0)
    if type_ == "int":
        kw.setdefault("digits", 9)
    if type_ == "boolean":
        kw.setdefault("nillable", False)
        kw.setdefault("defaulted_on_create", True)
    if type_ == "textarea" and kw["length"] > 255:
        kw.setdefault("filterable", False)
        kw.setdefault("sortable", False)
        kw.setdefault("groupable", False)
    if type_ in ("multipicklist",):
        kw.setdefault("sortable", False)
        kw.setdefault("groupable", False)
    if type_ in ("base64", "address", "location"):
        kw.setdefault("filterable", False)
        kw.setdefault("sortable", False)
        kw.setdefault("groupable", False)
        kw.setdefault("aggregatable", False)
    if type_ in ("address", "location"):
        kw.setdefault("createable", False)
        kw.setdefault("updateable", False)
    if type_ in ("double", "currency", "percent", "datetime", "textarea", "multipicklist"):
        kw.setdefault("groupable", type_ not in ("double", "currency", "percent", "datetime", "textarea"))
    # custom fields and optional standard fields carry field-level security
    if kw.get("nillable", True) and type_ not in ("id", "address", "location") and not kw.get("calculated"):
        kw.setdefault("permissionable", True)
    return FieldDef(name=name, type=type_, **kw)


def _ref(name: str, to: tuple[str, ...] | str, rel: str, **kw: Any) -> FieldDef:
    to_t = (to,) if isinstance(to, str) else to
    kw.setdefault("length", 18)
    return _f(name, "reference", reference_to=to_t, relationship_name=rel, **kw)


def _pick(name: str, values: tuple[str, ...] | list[str], **kw: Any) -> FieldDef:
    return _f(name, "picklist", picklist_values=tuple(values), **kw)


def _id() -> FieldDef:
    return _f(
        "Id", "id", label="Record ID", length=18, nillable=False, createable=False, updateable=False,
        id_lookup=True, defaulted_on_create=True, permissionable=False,
    )  # fmt: skip


def _sys(name: str, type_: str, **kw: Any) -> FieldDef:
    """A system-maintained field: not createable, updateable or permissionable."""
    kw.setdefault("nillable", False)
    return _f(
        name, type_, createable=False, updateable=False, defaulted_on_create=True, permissionable=False, **kw
    )


def _audit(
    *, deleted: bool = True, modstamp: bool = True, created: bool = True, modified: bool = True
) -> list[FieldDef]:
    out: list[FieldDef] = []
    if deleted:
        out.append(_sys("IsDeleted", "boolean", label="Deleted"))
    if created:
        out.append(_sys("CreatedDate", "datetime", label="Created Date"))
        out.append(
            _ref(
                "CreatedById",
                "User",
                "CreatedBy",
                label="Created By ID",
                nillable=False,
                createable=False,
                updateable=False,
                defaulted_on_create=True,
                permissionable=False,
            )
        )
    if modified:
        out.append(_sys("LastModifiedDate", "datetime", label="Last Modified Date"))
        out.append(
            _ref(
                "LastModifiedById",
                "User",
                "LastModifiedBy",
                label="Last Modified By ID",
                nillable=False,
                createable=False,
                updateable=False,
                defaulted_on_create=True,
                permissionable=False,
            )
        )
    if modstamp:
        out.append(_sys("SystemModstamp", "datetime", label="System Modstamp"))
    return out


def _owner(to: tuple[str, ...] = ("User",)) -> FieldDef:
    return _ref(
        "OwnerId",
        to,
        "Owner",
        label="Owner ID",
        nillable=False,
        defaulted_on_create=True,
        permissionable=False,
    )


def _address(prefix: str) -> list[FieldDef]:
    """An address compound (e.g. ``BillingAddress``) followed by its components."""
    compound = f"{prefix}Address" if prefix else "Address"
    out = [_f(compound, "address", label=f"{prefix} Address".strip())]
    for _key, suffix in ADDRESS_COMPONENTS:
        name = prefix + suffix
        if suffix == "Street":
            fd = _f(name, "textarea", length=255, compound_field_name=compound)
        elif suffix in ("Latitude", "Longitude"):
            fd = _f(name, "double", precision=18, scale=15, compound_field_name=compound)
        elif suffix == "GeocodeAccuracy":
            fd = _pick(
                name,
                (
                    "Address",
                    "NearAddress",
                    "Block",
                    "Street",
                    "ExtendedZip",
                    "Zip",
                    "Neighborhood",
                    "City",
                    "County",
                    "State",
                    "Unknown",
                ),
                compound_field_name=compound,
            )
        else:
            fd = _f(name, "string", length=80 if suffix != "PostalCode" else 20, compound_field_name=compound)
        out.append(fd)
    return out


def _location(base: str) -> list[FieldDef]:
    """A geolocation compound ``X__c`` with components ``X__Latitude__s`` / ``X__Longitude__s``."""
    stem = base.removesuffix("__c")
    return [
        _f(base, "location", label=_label(base), custom=True),
        _f(f"{stem}__Latitude__s", "double", precision=18, scale=15, custom=True, compound_field_name=base),
        _f(f"{stem}__Longitude__s", "double", precision=18, scale=15, custom=True, compound_field_name=base),
    ]


def _name_field(length: int = 255, **kw: Any) -> FieldDef:
    kw.setdefault("nillable", False)
    return _f("Name", "string", length=length, name_field=True, permissionable=False, **kw)


def _person_name() -> list[FieldDef]:
    return [
        _f("FirstName", "string", length=40, compound_field_name="Name"),
        _f("LastName", "string", length=80, nillable=False, compound_field_name="Name", permissionable=False),
        _f(
            "Name",
            "string",
            length=121,
            name_field=True,
            createable=False,
            updateable=False,
            permissionable=False,
        ),
    ]


def _obj(name: str, fields: list[FieldDef], **kw: Any) -> ObjectDef:
    kw.setdefault("label", _label(name))
    kw.setdefault("label_plural", kw["label"] + ("es" if kw["label"].endswith(("s", "ch")) else "s"))
    kw.setdefault("key_prefix", KEY_PREFIXES.get(name))
    kw.setdefault("has_system_modstamp", any(f.name == "SystemModstamp" for f in fields))
    return ObjectDef(name=name, fields=tuple(fields), **kw)


INDUSTRIES = (
    "Agriculture",
    "Banking",
    "Chemicals",
    "Education",
    "Energy",
    "Finance",
    "Healthcare",
    "Manufacturing",
    "Media",
    "Retail",
    "Technology",
    "Telecommunications",
    "Utilities",
)
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
WHAT_TARGETS = ("Account", "Opportunity", "Case", "Invoice__c")
PERMISSION_FLAGS = (
    "PermissionsApiEnabled", "PermissionsViewAllData", "PermissionsModifyAllData", "PermissionsQueryAllFiles",
    "PermissionsViewSetup", "PermissionsBulkApiHardDelete", "PermissionsViewAllUsers",
    "PermissionsViewEventLogFiles", "PermissionsModifyMetadata", "PermissionsAuthorApex",
    "PermissionsCustomizeApplication", "PermissionsManageUsers",
)  # fmt: skip


def _standard_objects() -> list[ObjectDef]:
    account = _obj(
        "Account",
        [
            _id(),
            *_audit()[:1],
            _name_field(),
            _pick(
                "Type",
                (
                    "Prospect",
                    "Customer - Direct",
                    "Customer - Channel",
                    "Channel Partner / Reseller",
                    "Partner",
                    "Other",
                ),
            ),
            _ref("ParentId", "Account", "Parent"),
            *_address("Billing"),
            *_address("Shipping"),
            _f("Phone", "phone"),
            _f("Fax", "phone"),
            _f("AccountNumber", "string", length=40),
            _f("Website", "url"),
            _pick("Industry", INDUSTRIES),
            _f("AnnualRevenue", "currency", scale=0),
            _f("NumberOfEmployees", "int", digits=8),
            _pick("Rating", ("Hot", "Warm", "Cold")),
            _f("Description", "textarea"),
            _owner(),
            *_audit()[1:],
            _f("LastActivityDate", "date", createable=False, updateable=False),
            _f("Tax_Id__c", "string", length=20, readable=False),
        ],
        feed_enabled=True,
    )
    contact = _obj(
        "Contact",
        [
            _id(),
            *_audit()[:1],
            _ref("AccountId", "Account", "Account"),
            *_person_name(),
            _ref("ReportsToId", "Contact", "ReportsTo"),
            *_address("Mailing"),
            _f("Phone", "phone"),
            _f("MobilePhone", "phone"),
            _f("Email", "email"),
            _f("Title", "string", length=128),
            _f("Birthdate", "date"),
            _pick("LeadSource", LEAD_SOURCES),
            _f("HasOptedOutOfEmail", "boolean"),
            _f("DoNotCall", "boolean"),
            _f("Description", "textarea"),
            _owner(),
            *_audit()[1:],
        ],
    )
    lead = _obj(
        "Lead",
        [
            _id(),
            *_audit()[:1],
            *_person_name(),
            _f("Company", "string", nillable=False),
            *_address(""),
            _f("Email", "email"),
            _f("Phone", "phone"),
            _pick(
                "Status",
                (
                    "Open - Not Contacted",
                    "Working - Contacted",
                    "Closed - Converted",
                    "Closed - Not Converted",
                ),
                nillable=False,
                defaulted_on_create=True,
            ),
            _pick("LeadSource", LEAD_SOURCES),
            _pick("Rating", ("Hot", "Warm", "Cold")),
            _f("AnnualRevenue", "currency", scale=0),
            _f("NumberOfEmployees", "int", digits=8),
            _f("IsConverted", "boolean", createable=False, updateable=False),
            _ref("ConvertedAccountId", "Account", "ConvertedAccount", createable=False, updateable=False),
            _ref("ConvertedContactId", "Contact", "ConvertedContact", createable=False, updateable=False),
            _f("Description", "textarea"),
            _owner(("Group", "User")),
            *_audit()[1:],
        ],
    )
    opportunity = _obj(
        "Opportunity",
        [
            _id(),
            *_audit()[:1],
            _ref("AccountId", "Account", "Account"),
            _name_field(120),
            _f("Description", "textarea"),
            _pick("StageName", STAGES, nillable=False),
            _f("Amount", "currency"),
            _f("Probability", "percent", precision=3, scale=0),
            _f("CloseDate", "date", nillable=False),
            _pick("Type", ("New Customer", "Existing Customer - Upgrade", "Existing Customer - Replacement")),
            _pick("LeadSource", LEAD_SOURCES),
            _f("IsClosed", "boolean", createable=False, updateable=False),
            _f("IsWon", "boolean", createable=False, updateable=False),
            _pick(
                "ForecastCategory",
                ("Omitted", "Pipeline", "BestCase", "Forecast", "Closed"),
                createable=False,
                updateable=False,
            ),
            _owner(),
            *_audit()[1:],
        ],
        label_plural="Opportunities",
    )
    case = _obj(
        "Case",
        [
            _id(),
            *_audit()[:1],
            _f(
                "CaseNumber",
                "string",
                length=30,
                auto_number=True,
                createable=False,
                updateable=False,
                name_field=True,
                nillable=False,
                permissionable=False,
            ),
            _ref("ContactId", "Contact", "Contact"),
            _ref("AccountId", "Account", "Account"),
            _ref("ParentId", "Case", "Parent"),
            _f("Subject", "string"),
            _f("Description", "textarea"),
            _pick("Status", ("New", "Working", "Escalated", "Closed")),
            _pick("Priority", ("High", "Medium", "Low")),
            _pick("Origin", ("Phone", "Email", "Web")),
            _f("IsClosed", "boolean", createable=False, updateable=False),
            _f("ClosedDate", "datetime", createable=False, updateable=False),
            _owner(("Group", "User")),
            *_audit()[1:],
        ],
    )
    task = _obj(
        "Task",
        [
            _id(),
            _ref("WhoId", ("Contact", "Lead"), "Who"),
            _ref("WhatId", WHAT_TARGETS, "What"),
            _f("Subject", "string"),
            _f("ActivityDate", "date"),
            _pick(
                "Status",
                ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"),
                nillable=False,
                defaulted_on_create=True,
            ),
            _pick("Priority", ("High", "Normal", "Low"), nillable=False, defaulted_on_create=True),
            _owner(("Group", "User")),
            _f("Description", "textarea"),
            _pick("TaskSubtype", ("Task", "Email", "Call")),
            _f("CallDurationInSeconds", "int"),
            _f("IsClosed", "boolean", createable=False, updateable=False),
            _f("IsArchived", "boolean", createable=False, updateable=False),
            *_audit(),
        ],
    )
    event = _obj(
        "Event",
        [
            _id(),
            _ref("WhoId", ("Contact", "Lead"), "Who"),
            _ref("WhatId", WHAT_TARGETS, "What"),
            _f("Subject", "string"),
            _f("Location", "string"),
            _f("IsAllDayEvent", "boolean"),
            _f("ActivityDateTime", "datetime"),
            _f("ActivityDate", "date"),
            _f("DurationInMinutes", "int"),
            _f("StartDateTime", "datetime"),
            _f("EndDateTime", "datetime"),
            _f("Description", "textarea"),
            _pick("ShowAs", ("Busy", "OutOfOffice", "Free")),
            _owner(),
            _f("IsArchived", "boolean", createable=False, updateable=False),
            *_audit(),
        ],
    )
    user = _obj(
        "User",
        [
            _id(),
            _f(
                "Username",
                "string",
                length=80,
                nillable=False,
                unique=True,
                id_lookup=True,
                permissionable=False,
            ),
            *_person_name(),
            _f("CompanyName", "string", length=80),
            _f("Title", "string", length=80),
            _f("Department", "string", length=80),
            _f("Email", "email", nillable=False, permissionable=False),
            _f("Alias", "string", length=8, nillable=False, permissionable=False),
            _f("IsActive", "boolean", permissionable=False),
            _pick(
                "UserType",
                (
                    "Standard",
                    "PowerPartner",
                    "PowerCustomerSuccess",
                    "CustomerSuccess",
                    "CsnOnly",
                    "CspLitePortal",
                    "Guest",
                    "SelfService",
                ),
                createable=False,
                updateable=False,
            ),
            _ref("ProfileId", "Profile", "Profile", nillable=False, permissionable=False),
            _ref("ManagerId", "User", "Manager"),
            _pick(
                "TimeZoneSidKey",
                (
                    "America/Los_Angeles",
                    "America/New_York",
                    "Europe/London",
                    "Europe/Paris",
                    "Asia/Tokyo",
                    "GMT",
                ),
                nillable=False,
                permissionable=False,
            ),
            _pick(
                "LocaleSidKey",
                ("en_US", "en_GB", "fr_FR", "de_DE", "ja_JP"),
                nillable=False,
                permissionable=False,
            ),
            _pick("LanguageLocaleKey", ("en_US", "fr", "de", "ja"), nillable=False, permissionable=False),
            _pick("EmailEncodingKey", ("UTF-8", "ISO-8859-1"), nillable=False, permissionable=False),
            _f("LastLoginDate", "datetime", createable=False, updateable=False),
            *_audit(deleted=False),
        ],
        deletable=False,
    )
    user_license = _obj(
        "UserLicense",
        [
            _id(),
            _f("Name", "string", length=40, name_field=True, createable=False, updateable=False),
            _f("MasterLabel", "string", length=40, createable=False, updateable=False),
            _f("LicenseDefinitionKey", "string", length=40, createable=False, updateable=False),
            _pick("Status", ("Active", "Disabled"), createable=False, updateable=False),
            _f("TotalLicenses", "int", createable=False, updateable=False),
            _f("UsedLicenses", "int", createable=False, updateable=False),
            *[_sys(n, "datetime") for n in ("CreatedDate", "LastModifiedDate", "SystemModstamp")],
        ],
        createable=False,
        updateable=False,
        deletable=False,
        replicateable=False,
    )
    profile = _obj(
        "Profile",
        [
            _id(),
            _name_field(),
            _ref("UserLicenseId", "UserLicense", "UserLicense", nillable=False),
            _pick(
                "UserType",
                ("Standard", "PowerPartner", "CspLitePortal", "Guest"),
                createable=False,
                updateable=False,
            ),
            _f("Description", "string"),
            *_audit(deleted=False),
        ],
    )
    permission_set = _obj(
        "PermissionSet",
        [
            _id(),
            _name_field(80),
            _f("Label", "string", length=80, nillable=False),
            _f("Description", "string"),
            _f("IsOwnedByProfile", "boolean", createable=False, updateable=False),
            _ref("ProfileId", "Profile", "Profile", createable=False, updateable=False),
            *[_f(p, "boolean") for p in PERMISSION_FLAGS],
            *_audit(deleted=False),
        ],
    )
    psa = _obj(
        "PermissionSetAssignment",
        [
            _id(),
            _ref("AssigneeId", "User", "Assignee", nillable=False),
            _ref("PermissionSetId", "PermissionSet", "PermissionSet", nillable=False),
            _f("IsActive", "boolean", createable=False, updateable=False),
            _sys("SystemModstamp", "datetime"),
        ],
        updateable=False,
    )
    object_perms = _obj(
        "ObjectPermissions",
        [
            _id(),
            _ref("ParentId", "PermissionSet", "Parent", nillable=False),
            _f("SobjectType", "string", length=40, nillable=False),
            *[
                _f(f"Permissions{p}", "boolean")
                for p in ("Read", "Create", "Edit", "Delete", "ViewAllRecords", "ModifyAllRecords")
            ],
            *_audit(deleted=False),
        ],
        label_plural="Object Permissions",
    )
    field_perms = _obj(
        "FieldPermissions",
        [
            _id(),
            _ref("ParentId", "PermissionSet", "Parent", nillable=False),
            _f("SobjectType", "string", length=40, nillable=False),
            _f("Field", "string", length=100, nillable=False),
            _f("PermissionsRead", "boolean"),
            _f("PermissionsEdit", "boolean"),
            *_audit(deleted=False),
        ],
        label_plural="Field Permissions",
    )
    organization = _obj(
        "Organization",
        [
            _id(),
            _name_field(80),
            _f("Division", "string", length=80),
            _f("Country", "string", length=80),
            _f("IsSandbox", "boolean", createable=False, updateable=False),
            _pick(
                "OrganizationType",
                ("Developer Edition", "Enterprise Edition", "Unlimited Edition", "Professional Edition"),
                createable=False,
                updateable=False,
            ),
            _f("InstanceName", "string", length=5, createable=False, updateable=False),
            _pick(
                "TimeZoneSidKey",
                ("America/Los_Angeles", "America/New_York", "Europe/London", "GMT"),
                nillable=False,
            ),
            _pick("LanguageLocaleKey", ("en_US", "fr", "de", "ja"), nillable=False),
            _pick("DefaultLocaleSidKey", ("en_US", "en_GB", "fr_FR", "de_DE"), nillable=False),
            _f("NamespacePrefix", "string", length=15, createable=False, updateable=False),
            _f("TrialExpirationDate", "datetime", createable=False, updateable=False),
            *_audit(deleted=False),
        ],
        createable=False,
        deletable=False,
        replicateable=False,
    )
    attachment = _obj(
        "Attachment",
        [
            _id(),
            *_audit()[:1],
            _ref(
                "ParentId",
                ("Account", "Contact", "Opportunity", "Case", "Invoice__c"),
                "Parent",
                nillable=False,
            ),
            _f("Name", "string", nillable=False, name_field=True, permissionable=False),
            _f("IsPrivate", "boolean"),
            _f("ContentType", "string", length=120),
            _f("BodyLength", "int", createable=False, updateable=False),
            _f("Body", "base64", nillable=False, permissionable=False),
            _owner(),
            *_audit()[1:],
            _f("Description", "textarea", length=500),
        ],
        bulk_supported=False,
        blob_field="Body",
    )
    document = _obj(
        "Document",
        [
            _id(),
            _ref("FolderId", ("User",), "Folder", nillable=False),
            _f(
                "IsDeleted",
                "boolean",
                createable=False,
                updateable=False,
                nillable=False,
                permissionable=False,
            ),
            _f("Name", "string", nillable=False, name_field=True, permissionable=False),
            _f("DeveloperName", "string", length=80, nillable=False),
            _f("ContentType", "string", length=120),
            _f("Type", "string", length=40),
            _f("IsPublic", "boolean"),
            _f("BodyLength", "int", createable=False, updateable=False),
            _f("Body", "base64"),
            _f("Url", "url"),
            _f("Description", "textarea", length=255),
            _f("Keywords", "string"),
            _f("IsInternalUseOnly", "boolean"),
            _ref("AuthorId", "User", "Author"),
            *_audit(deleted=False),
        ],
        blob_field="Body",
    )
    content_version = _obj(
        "ContentVersion",
        [
            _id(),
            _ref(
                "ContentDocumentId", "ContentDocument", "ContentDocument", createable=False, updateable=False
            ),
            _f("IsLatest", "boolean", createable=False, updateable=False),
            _f("Title", "string", nillable=False),
            _f("Description", "textarea", length=1000),
            _f("PathOnClient", "string", length=500),
            _f("VersionNumber", "string", length=20, createable=False, updateable=False),
            _f("ReasonForChange", "string"),
            _f("ContentSize", "int", createable=False, updateable=False),
            _f("FileType", "string", length=20, createable=False, updateable=False),
            _f("FileExtension", "string", length=40),
            _f("VersionData", "base64"),
            _f("ContentModifiedDate", "datetime"),
            _ref(
                "FirstPublishLocationId", ("Account", "User", "Opportunity", "Case"), "FirstPublishLocation"
            ),
            _owner(),
            _f(
                "IsDeleted",
                "boolean",
                createable=False,
                updateable=False,
                nillable=False,
                permissionable=False,
            ),
            *_audit(deleted=False),
        ],
        blob_field="VersionData",
        deletable=False,
    )
    content_document = _obj(
        "ContentDocument",
        [
            _id(),
            _f("Title", "string", nillable=False),
            _f("FileType", "string", length=20),
            _f("FileExtension", "string", length=40),
            _f("ContentSize", "int"),
            _ref("LatestPublishedVersionId", "ContentVersion", "LatestPublishedVersion"),
            _pick("PublishStatus", ("U", "P", "R")),
            _f("IsArchived", "boolean"),
            _owner(),
            *_audit(),
        ],
        createable=False,
    )
    cdl = _obj(
        "ContentDocumentLink",
        [
            _id(),
            _ref(
                "LinkedEntityId", ("Account", "User", "Opportunity", "Case"), "LinkedEntity", nillable=False
            ),
            _ref("ContentDocumentId", "ContentDocument", "ContentDocument", nillable=False),
            _pick("ShareType", ("V", "C", "I")),
            _pick("Visibility", ("AllUsers", "InternalUsers", "SharedUsers")),
            _sys("IsDeleted", "boolean"),
            _sys("SystemModstamp", "datetime"),
        ],
        requires_filter=True,
        replicateable=False,
        label="Content Document Link",
    )
    static_resource = _obj(
        "StaticResource",
        [
            _id(),
            _f("NamespacePrefix", "string", length=15, createable=False, updateable=False),
            _name_field(),
            _f("ContentType", "string", length=120, nillable=False),
            _f("BodyLength", "int", createable=False, updateable=False),
            _f("Body", "base64"),
            _f("Description", "textarea", length=1000),
            _pick("CacheControl", ("Private", "Public"), nillable=False),
            *_audit(deleted=False),
        ],
        blob_field="Body",
    )
    event_log = _obj(
        "EventLogFile",
        [
            _id(),
            *_audit()[:1],
            *_audit()[1:],
            _pick(
                "EventType",
                (
                    "API",
                    "RestApi",
                    "BulkApi",
                    "BulkApi2",
                    "Login",
                    "Logout",
                    "Report",
                    "URI",
                    "ApiTotalUsage",
                ),
            ),
            _f("LogDate", "datetime"),
            _f("LogFileLength", "double", precision=18, scale=0),
            _f("LogFileContentType", "string", length=20),
            _f("ApiVersion", "double", precision=18, scale=1),
            _pick("Interval", ("Daily", "Hourly")),
            _f("Sequence", "int"),
            _f("LogFileFieldNames", "textarea", length=4000),
            _f("LogFileFieldTypes", "textarea", length=4000),
            _f("LogFile", "base64"),
        ],
        blob_field="LogFile",
        createable=False,
        updateable=False,
        deletable=False,
        replicateable=False,
        label_plural="Event Log Files",
    )
    account_feed = _obj(
        "AccountFeed",
        [
            _id(),
            _ref("ParentId", "Account", "Parent"),
            _pick("Type", ("TextPost", "LinkPost", "ContentPost", "TrackedChange")),
            _f("Title", "string"),
            _f("Body", "textarea", length=10000),
            _f("LinkUrl", "url", length=1000),
            _f("IsRichText", "boolean"),
            _f("CommentCount", "int"),
            _f("LikeCount", "int"),
            *_audit(),
        ],
        bulk_supported=False,
        associate_entity_type="Feed",
        associate_parent_entity="Account",
        updateable=False,
        replicateable=False,
        label="Account Feed",
    )
    account_share = _obj(
        "AccountShare",
        [
            _id(),
            _ref("AccountId", "Account", "Account", nillable=False),
            _ref("UserOrGroupId", ("User", "Group"), "UserOrGroup", nillable=False),
            _pick("AccountAccessLevel", ("Read", "Edit", "All"), nillable=False),
            _pick("OpportunityAccessLevel", ("None", "Read", "Edit"), nillable=False),
            _pick("CaseAccessLevel", ("None", "Read", "Edit"), nillable=False),
            _pick("ContactAccessLevel", ("None", "Read", "Edit")),
            _pick("RowCause", ("Owner", "Manual", "Rule", "ImplicitChild", "Team"), createable=False),
            _sys("LastModifiedDate", "datetime"),
            _ref(
                "LastModifiedById",
                "User",
                "LastModifiedBy",
                createable=False,
                updateable=False,
                permissionable=False,
                nillable=False,
            ),
            _sys("IsDeleted", "boolean"),
        ],
        associate_entity_type="Share",
        associate_parent_entity="Account",
        replicateable=False,
        label="Account Share",
    )
    account_history = _obj(
        "AccountHistory",
        [
            _id(),
            _sys("IsDeleted", "boolean"),
            _ref("AccountId", "Account", "Account", nillable=False, createable=False, updateable=False),
            _ref(
                "CreatedById",
                "User",
                "CreatedBy",
                createable=False,
                updateable=False,
                nillable=False,
                permissionable=False,
            ),
            _sys("CreatedDate", "datetime"),
            _pick(
                "Field",
                ("created", "Name", "Phone", "Industry", "Rating", "Type", "AnnualRevenue", "Owner"),
                createable=False,
                updateable=False,
            ),
            _f("DataType", "string", length=40, createable=False, updateable=False),
            _f("OldValue", "string", createable=False, updateable=False),
            _f("NewValue", "string", createable=False, updateable=False),
        ],
        associate_entity_type="History",
        associate_parent_entity="Account",
        createable=False,
        updateable=False,
        deletable=False,
        replicateable=False,
        label="Account History",
        label_plural="Account History",
    )
    return [
        account,
        contact,
        lead,
        opportunity,
        case,
        task,
        event,
        user,
        user_license,
        profile,
        permission_set,
        psa,
        object_perms,
        field_perms,
        organization,
        attachment,
        document,
        content_version,
        content_document,
        cdl,
        static_resource,
        event_log,
        account_feed,
        account_share,
        account_history,
    ]


def _custom_objects(count: int) -> list[ObjectDef]:
    out: list[ObjectDef] = []
    for i in range(count):
        if i == 0:
            name = "Invoice__c"
            fields = [
                _id(),
                _owner(("Group", "User")),
                _sys("IsDeleted", "boolean"),
                _f(
                    "Name",
                    "string",
                    length=80,
                    name_field=True,
                    nillable=False,
                    custom=False,
                    permissionable=False,
                ),
                *_audit(deleted=False),
                _ref("Account__c", "Account", "Account__r"),
                _ref("Contact__c", "Contact", "Contact__r"),
                _f("Amount__c", "currency", precision=16, scale=2),
                _f("Tax_Rate__c", "percent"),
                _f("Quantity__c", "double", precision=18, scale=0),
                _f("Invoice_Date__c", "date"),
                _f("Paid_At__c", "datetime"),
                _f("Reminder_Time__c", "time"),
                _f("Is_Paid__c", "boolean"),
                _pick("Status__c", ("Draft", "Sent", "Paid", "Overdue", "Void")),
                _f(
                    "Tags__c",
                    "multipicklist",
                    picklist_values=("Priority", "Export", "Manual", "Recurring", "Disputed"),
                ),
                _f("Contact_Email__c", "email"),
                _f("Contact_Phone__c", "phone"),
                _f("Portal_Url__c", "url"),
                _f("Notes__c", "textarea", length=32768),
                _f("Summary__c", "string", length=255),
                _f("External_Key__c", "string", length=40, external_id=True, unique=True, id_lookup=True),
                *_location("Location__c"),
            ]
        else:
            name = "Shipment__c" if i == 1 else f"Custom_{i}__c"
            fields = [
                _id(),
                _owner(("Group", "User")),
                _sys("IsDeleted", "boolean"),
                _f(
                    "Name",
                    "string",
                    length=80,
                    name_field=True,
                    nillable=False,
                    custom=False,
                    permissionable=False,
                ),
                *_audit(deleted=False),
                _ref("Invoice__c", "Invoice__c", "Invoice__r"),
                _f("Tracking_Number__c", "string", length=40),
                _pick("Carrier__c", ("DHL", "FedEx", "UPS", "USPS", "La Poste")),
                _f("Shipped_At__c", "datetime"),
                _f("Delivery_Date__c", "date"),
                _f("Window_Start__c", "time"),
                _f("Weight__c", "double", precision=10, scale=3),
                _f("Cost__c", "currency", precision=12, scale=2),
                _f("Damage_Rate__c", "percent"),
                _f("Delivered__c", "boolean"),
                _f("Packages__c", "int"),
                _f("Handling__c", "multipicklist", picklist_values=("Fragile", "Cold", "Hazmat", "Oversize")),
                _f("Recipient_Email__c", "email"),
                _f("Recipient_Phone__c", "phone"),
                _f("Tracking_Url__c", "url"),
                _f("Notes__c", "textarea", length=131072),
            ]
        out.append(
            _obj(
                name,
                fields,
                custom=True,
                key_prefix=KEY_PREFIXES.get(name, custom_key_prefix(i)),
                feed_enabled=False,
            )
        )
    return out


def build_schema(custom_objects: int = 2, extra: list[ObjectDef] | None = None) -> dict[str, ObjectDef]:
    """The org's objects by canonical name: the standard objects plus ``custom_objects`` custom ones,
    then ``extra`` (objects loaded from a description, :mod:`emulator.schema_data`).

    ``Invoice__c`` and ``Shipment__c`` come first; more custom objects are ``Custom_<i>__c``.
    Task/Event ``WhatId`` may point at ``Invoice__c``, so ``custom_objects`` must be >= 1.
    """
    if custom_objects < 1:
        raise ValueError("the schema needs at least one custom object (Invoice__c)")
    objects = _standard_objects() + _custom_objects(custom_objects)
    out = {o.name: o for o in objects}
    for o in extra or ():
        if find_object(out, o.name) is not None:
            raise ValueError(f"{o.name}: the description defines an object the org already has")
        if o.key_prefix is not None and any(x.key_prefix == o.key_prefix for x in out.values()):
            raise ValueError(f"{o.name}: key prefix {o.key_prefix} is taken")
        out[o.name] = o
    return out


def find_object(schema: dict[str, ObjectDef], name: str) -> ObjectDef | None:
    """The object called ``name``, case-insensitive."""
    obj = schema.get(name)
    if obj is not None:
        return obj
    low = name.lower()
    for key, value in schema.items():
        if key.lower() == low:
            return value
    return None


def object_for_id(schema: dict[str, ObjectDef], record_id: str) -> ObjectDef | None:
    """The object whose key prefix starts ``record_id`` (for polymorphic parents), or None."""
    prefix = record_id[:3]
    for obj in schema.values():
        if obj.key_prefix == prefix and obj.associate_entity_type is None:
            return obj
    return None


# ---------------------------------------------------------------------------------------------
# describe


def _urls(name: str, api_version: str) -> dict[str, str]:
    base = f"/services/data/v{api_version}/sobjects/{name}"
    return {
        "sobject": base,
        "describe": f"{base}/describe",
        "rowTemplate": f"{base}/{{ID}}",
        "compactLayouts": f"{base}/describe/compactLayouts",
        "layouts": f"{base}/describe/layouts",
        "quickActions": f"{base}/quickActions",
        "approvalLayouts": f"{base}/describe/approvalLayouts",
        "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
    }


def _global_entry(obj: ObjectDef, api_version: str) -> dict[str, Any]:
    return {
        "activateable": False,
        "associateEntityType": obj.associate_entity_type,
        "associateParentEntity": obj.associate_parent_entity,
        "createable": obj.createable,
        "custom": obj.custom,
        "customSetting": obj.custom_setting,
        "deepCloneable": False,
        "deletable": obj.deletable,
        "deprecatedAndHidden": False,
        "feedEnabled": obj.feed_enabled,
        "hasSubtypes": False,
        "isInterface": False,
        "isSubtype": False,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": obj.associate_entity_type is None,
        "mergeable": obj.name in ("Account", "Contact", "Lead", "Case"),
        "mruEnabled": obj.associate_entity_type is None,
        "name": obj.name,
        "queryable": obj.queryable,
        "replicateable": obj.replicateable,
        "retrieveable": obj.retrieveable,
        "searchable": obj.searchable and obj.associate_entity_type is None,
        "triggerable": obj.associate_entity_type is None,
        "undeletable": obj.deletable and obj.has_is_deleted,
        "updateable": obj.updateable,
        "urls": _urls(obj.name, api_version),
    }


def describe_global(schema: dict[str, ObjectDef], api_version: str) -> dict[str, Any]:
    """The body of ``GET /services/data/vX/sobjects``."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [_global_entry(o, api_version) for o in schema.values()],
    }


def describe_field(f: FieldDef) -> dict[str, Any]:
    """One entry of ``fields`` in an sObject describe: every documented key, null when N/A."""
    is_text = f.type in TEXT_TYPES or f.type in ID_TYPES
    byte_length = f.length * 3 if is_text else 0
    return {
        "aggregatable": f.aggregatable,
        "aiPredictionField": False,
        "autoNumber": f.auto_number,
        "byteLength": byte_length,
        "calculated": f.calculated,
        "calculatedFormula": None,
        "cascadeDelete": False,
        "caseSensitive": f.type == "id",
        "compoundFieldName": f.compound_field_name,
        "controllerName": None,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": False if f.type == "boolean" else None,
        "defaultValueFormula": None,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": f.digits,
        "displayLocationInDecimal": f.type == "location",
        "encrypted": False,
        "externalId": f.external_id,
        "extraTypeInfo": None,
        "filterable": f.filterable,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": f.groupable,
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": f.id_lookup,
        "inlineHelpText": None,
        "label": f.label,
        "length": f.length if is_text else 0,
        "mask": None,
        "maskType": None,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": f.polymorphic,
        "nillable": f.nillable,
        "permissionable": f.permissionable,
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
            for v in f.picklist_values
        ],
        "polymorphicForeignKey": f.polymorphic,
        "precision": f.precision,
        "queryByDistance": f.type == "location",
        "referenceTargetField": None,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "relationshipOrder": None,
        "restrictedDelete": False,
        "restrictedPicklist": False,
        "scale": f.scale,
        "searchPrefilterable": f.type == "reference",
        "soapType": f.soap_type,
        "sortable": f.sortable,
        "type": f.type,
        "unique": f.unique,
        "updateable": f.updateable,
        "writeRequiresMasterRead": False,
    }


def _child_relationships(obj: ObjectDef, schema: dict[str, ObjectDef] | None) -> list[dict[str, Any]]:
    if schema is None:
        return []
    out = []
    for child in schema.values():
        for f in child.fields:
            if f.type == "reference" and obj.name in f.reference_to and f.readable:
                rel = None
                if f.name not in ("CreatedById", "LastModifiedById", "OwnerId") and child.label_plural:
                    rel = (
                        (child.name.removesuffix("__c") + "s__r")
                        if child.custom
                        else child.label_plural.replace(" ", "")
                    )
                out.append(
                    {
                        "cascadeDelete": False,
                        "childSObject": child.name,
                        "deprecatedAndHidden": False,
                        "field": f.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": rel,
                        "restrictedDelete": False,
                    }
                )
    return out


def describe_object(
    obj: ObjectDef, api_version: str, schema: dict[str, ObjectDef] | None = None
) -> dict[str, Any]:
    """The body of ``GET /sobjects/{obj}/describe``; FLS-hidden fields are left out.

    Pass ``schema`` to fill ``childRelationships``.
    """
    body = _global_entry(obj, api_version)
    body.update(
        {
            "actionOverrides": [],
            "childRelationships": _child_relationships(obj, schema),
            "compactLayoutable": obj.associate_entity_type is None,
            "fields": [describe_field(f) for f in obj.readable_fields],
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [
                {
                    "active": True,
                    "available": True,
                    "defaultRecordTypeMapping": True,
                    "developerName": "Master",
                    "master": True,
                    "name": "Master",
                    "recordTypeId": "012000000000000AAA",
                    "urls": {
                        "layout": f"/services/data/v{api_version}/sobjects/{obj.name}/describe/layouts/"
                        "012000000000000AAA"
                    },
                }
            ]
            if obj.associate_entity_type is None
            else [],
            "searchLayoutable": obj.searchable,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [{"label": "All " + obj.label_plural.lower(), "name": "everything"}],
        }
    )
    return body
