"""Typed views of Salesforce describe data (plain, picklable, JSON-able dataclasses).

Kept inside ``engine.extract`` for now because the shared ``engine/model.py`` is being written
by the repository work at the same time; they move there (a small, mechanical change) when the
jobs stage needs to put them into manifests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from engine.model import SkipReason

ExtractPath = Literal["bulk2", "rest"]

# Describe ``type`` values of compound fields: never selected, their components are.
COMPOUND_TYPES = frozenset({"address", "location"})
# Bulk 2.0 cannot select these; bodies are fetched through the blob endpoints instead.
BLOB_TYPES = frozenset({"base64"})


@dataclass(frozen=True)
class FieldSpec:
    """One field of a describe, with what extraction needs to type and select it.

    Attributes:
        name: API name (canonical casing as describe spells it).
        type: describe ``type`` (``id``, ``reference``, ``string``, ``datetime``, ``currency``...).
        soap_type: describe ``soapType`` (``xsd:double``...).
        length, precision, scale, digits: as in describe (0 when not applicable).
        nillable, calculated, filterable: describe flags.
        compound_field_name: the compound parent (``BillingAddress``) of a component field.
        reference_to: target objects of a lookup.
    """

    name: str
    type: str
    soap_type: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    nillable: bool = True
    calculated: bool = False
    filterable: bool = True
    compound_field_name: str | None = None
    reference_to: tuple[str, ...] = ()

    @property
    def is_compound(self) -> bool:
        return self.type in COMPOUND_TYPES

    @property
    def is_blob(self) -> bool:
        return self.type in BLOB_TYPES

    @staticmethod
    def from_describe(d: dict[str, Any]) -> FieldSpec:
        return FieldSpec(
            name=str(d["name"]),
            type=str(d["type"]),
            soap_type=str(d.get("soapType") or ""),
            length=int(d.get("length") or 0),
            precision=int(d.get("precision") or 0),
            scale=int(d.get("scale") or 0),
            digits=int(d.get("digits") or 0),
            nillable=bool(d.get("nillable", True)),
            calculated=bool(d.get("calculated", False)),
            filterable=bool(d.get("filterable", True)),
            compound_field_name=d.get("compoundFieldName"),
            reference_to=tuple(d.get("referenceTo") or ()),
        )


ARCHIVING_OBJECTS = ("Task", "Event")
"""The objects whose old rows Salesforce archives (activities)."""


@dataclass(frozen=True)
class ObjectSpec:
    """One object of the org as extraction sees it.

    Attributes:
        name: API name.
        key_prefix: 3-character Id prefix, None for objects without one.
        queryable, retrieveable, replicateable, custom: describe flags.
        associate_entity_type: ``Feed``/``Share``/``History``/``ChangeEvent`` for associated objects.
        fields: every field of the describe, in describe order.
    """

    name: str
    key_prefix: str | None = None
    label: str = ""
    queryable: bool = True
    retrieveable: bool = True
    replicateable: bool = True
    custom: bool = False
    associate_entity_type: str | None = None
    associate_parent_entity: str | None = None
    fields: tuple[FieldSpec, ...] = ()

    def field(self, name: str) -> FieldSpec | None:
        low = name.lower()
        for f in self.fields:
            if f.name.lower() == low:
                return f
        return None

    @property
    def cursor_field(self) -> str | None:
        """The incremental key: SystemModstamp, else LastModifiedDate, else CreatedDate."""
        for name in ("SystemModstamp", "LastModifiedDate", "CreatedDate"):
            f = self.field(name)
            if f is not None and f.type == "datetime":
                return f.name
        return None

    @property
    def has_is_deleted(self) -> bool:
        return self.field("IsDeleted") is not None

    @property
    def hides_archived_rows(self) -> bool:
        """Salesforce archives Task and Event rows after a year (``IsArchived``); ``query`` then
        hides them and only ``queryAll`` returns them, so the object's live rows are read with
        ``queryAll ... IsDeleted = false`` (SALESFORCE_API.md, archived activities)."""
        return self.name in ARCHIVING_OBJECTS and self.has_is_deleted and self.field("IsArchived") is not None

    @staticmethod
    def from_describe(d: dict[str, Any]) -> ObjectSpec:
        """From an sObject describe (``fields`` present) or a describeGlobal entry (no fields)."""
        return ObjectSpec(
            name=str(d["name"]),
            key_prefix=d.get("keyPrefix"),
            label=str(d.get("label") or ""),
            queryable=bool(d.get("queryable", False)),
            retrieveable=bool(d.get("retrieveable", False)),
            replicateable=bool(d.get("replicateable", False)),
            custom=bool(d.get("custom", False)),
            associate_entity_type=d.get("associateEntityType"),
            associate_parent_entity=d.get("associateParentEntity"),
            fields=tuple(FieldSpec.from_describe(f) for f in d.get("fields") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkippedField:
    """A field left out of the extract, and why (listed in the job report)."""

    name: str
    reason: str


@dataclass(frozen=True)
class ObjectPlan:
    """What to extract from one in-scope object: the SELECT list and the API path.

    Attributes:
        spec: the describe.
        fields: the selected fields, in describe order; ``Id`` first.
        path: ``bulk2`` normally, ``rest`` (queryAll paging) for objects Bulk cannot query.
        skipped: fields left out, with reasons (compound parents, blobs, unreadable...).
        blob_fields: base64 fields whose bodies the file stage downloads by record Id.
    """

    spec: ObjectSpec
    fields: tuple[FieldSpec, ...]
    path: ExtractPath = "bulk2"
    skipped: tuple[SkippedField, ...] = ()
    blob_fields: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


@dataclass(frozen=True)
class ScopeDecision:
    """Whether one object of describeGlobal is backed up, and why not if it is not."""

    name: str
    included: bool
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    code: SkipReason | None = None
    """The typed reason of an object left out (``engine.model.ObjectSkipped``)."""
