"""Scope rules: which objects and fields a backup extracts, and through which API (pure).

Object rules, in order (the first that applies decides; :class:`ScopeDecision` says which):

1. Explicitly excluded types (org settings) are out; with ``only`` set, everything else is out.
2. Objects that are not ``queryable`` or not ``retrieveable`` are out.
3. ``*ChangeEvent`` (CDC), platform events ``__e`` and known query-incompatible or
   filter-required objects are out (SALESFORCE_API.md §6).
4. ``*Feed`` and ``*Share`` objects are out unless their toggle is on; ``*History`` is in unless
   its toggle is off.

Field rules (:func:`plan_object`):

* compound ``address``/``location`` fields are replaced by their components (which describe
  lists as separate fields with ``compoundFieldName``);
* ``base64`` fields are not selected (Bulk cannot, and REST returns a URL): they are listed in
  ``blob_fields`` so the file stage downloads bodies by record Id;
* fields hidden by field-level security are absent from describe; a ``field_permissions`` hook
  (e.g. built from ``FieldPermissions`` rows) lets the report name them as skipped.

Objects on the Bulk-unsupported list (or learned at run time from an ``INVALIDENTITY`` error)
take the REST ``queryAll`` path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from engine.extract.model import ExtractPath, FieldSpec, ObjectPlan, ObjectSpec, ScopeDecision, SkippedField

# Bulk API cannot query these (airbyte 2.10.3 and tap-salesforce lists, SALESFORCE_API.md §6).
BULK_UNSUPPORTED = frozenset(
    {
        "AcceptedEventRelation", "AssetTokenEvent", "Attachment", "AttachedContentNote", "CaseStatus",
        "ContractStatus", "DeclinedEventRelation", "EventWhoRelation", "FieldSecurityClassification",
        "KnowledgeArticle", "KnowledgeArticleVersion", "KnowledgeArticleVersionHistory",
        "KnowledgeArticleViewStat", "KnowledgeArticleVoteStat", "OrderStatus", "PartnerRole",
        "QuoteTemplateRichTextData", "RecentlyViewed", "ServiceAppointmentStatus", "ShiftStatus",
        "SolutionStatus", "TaskPriority", "TaskStatus", "TaskWhoRelation", "UndecidedEventRelation",
        "WorkOrderLineItemStatus", "WorkOrderStatus", "WorkStepStatus", "UserRecordAccess",
        "OwnedContentDocument", "OpenActivity", "NoteAndAttachment", "Name", "LookedUpFromActivity",
        "FolderedContentDocument", "ContentFolderItem", "CombinedAttachment", "CaseTeamTemplateRecord",
        "CaseTeamTemplateMember", "CaseTeamTemplate", "CaseTeamRole", "CaseTeamMember",
        "AttachedContentDocument", "AggregateResult", "ChannelProgramLevelShare", "AccountBrandShare",
        "AccountFeed", "AssetFeed",
    }
)  # fmt: skip

# Not queryable at all, or only with a filter on a single parent (SALESFORCE_API.md §6).
QUERY_RESTRICTED = frozenset(
    {
        "ActivityHistory", "AggregateResult", "AttachedContentDocument", "AttachedContentNote",
        "CombinedAttachment", "ContentBody", "DataType", "EmailStatus", "FeedLike", "FeedSignal",
        "FeedTrackedChange", "FolderedContentDocument", "ListViewChartInstance", "LookedUpFromActivity",
        "Name", "NoteAndAttachment", "OpenActivity", "OutgoingEmail", "OutgoingEmailRelation",
        "OwnedContentDocument", "ProcessInstanceHistory", "QuoteTemplateRichTextData", "UserRecordAccess",
        "Announcement", "AppTabMember", "CollaborationGroupRecord", "ColorDefinition", "ContentDocumentLink",
        "ContentFolderItem", "ContentFolderMember", "DataStatistics", "DatacloudDandBCompany",
        "EntityParticle", "FieldDefinition", "FieldHistoryArchive", "FlexQueueItem", "FlowVariableView",
        "FlowVersionView", "IconDefinition", "IdeaComment", "NetworkUserHistoryRecent",
        "OwnerChangeOptionInfo", "PicklistValueInfo", "PlatformAction", "RelationshipDomain",
        "RelationshipInfo", "SearchLayout", "SiteDetail", "UserEntityAccess", "UserFieldAccess", "Vote",
        "NewsFeed", "UserProfileFeed",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ScopeRules:
    """The org's scope settings.

    Attributes:
        include_feed: back up ``*Feed`` objects.
        include_share: back up ``*Share`` objects.
        include_history: back up ``*History`` objects (field history; on by default).
        excluded: object names never backed up (case-insensitive).
        only: when set, only these objects (object-scoped jobs).
        bulk_unsupported: objects that go through REST queryAll instead of Bulk 2.0.
        query_restricted: objects skipped because they cannot be queried without a filter.
    """

    include_feed: bool = False
    include_share: bool = False
    include_history: bool = True
    excluded: frozenset[str] = frozenset()
    only: frozenset[str] | None = None
    bulk_unsupported: frozenset[str] = BULK_UNSUPPORTED
    query_restricted: frozenset[str] = QUERY_RESTRICTED
    learned_rest_only: frozenset[str] = field(default=frozenset())

    def with_rest_only(self, name: str) -> ScopeRules:
        """Rules that remember that Bulk refused ``name`` (INVALIDENTITY at run time)."""
        return ScopeRules(
            self.include_feed, self.include_share, self.include_history, self.excluded, self.only,
            self.bulk_unsupported, self.query_restricted, self.learned_rest_only | {name},
        )  # fmt: skip


def _lower(names: Iterable[str]) -> set[str]:
    return {n.lower() for n in names}


def _kind(spec: ObjectSpec) -> str | None:
    """Feed / Share / History / ChangeEvent, from describe or, failing that, from the name."""
    if spec.associate_entity_type:
        return spec.associate_entity_type
    for suffix in ("ChangeEvent", "Feed", "Share", "History"):
        if spec.name.endswith(suffix) and spec.name != suffix:
            return suffix
    return None


def decide(spec: ObjectSpec, rules: ScopeRules) -> ScopeDecision:
    """Whether ``spec`` (a describeGlobal entry is enough) is in scope; see the module rules."""
    name = spec.name
    if name.lower() in _lower(rules.excluded):
        return ScopeDecision(name, False, "excluded by the org settings", code="excluded")
    if rules.only is not None and name.lower() not in _lower(rules.only):
        return ScopeDecision(name, False, "not selected for this job", code="not_selected")
    if not spec.queryable:
        return ScopeDecision(name, False, "not queryable", code="not_queryable")
    if not spec.retrieveable:
        return ScopeDecision(name, False, "not retrieveable", code="not_retrieveable")
    kind = _kind(spec)
    if kind == "ChangeEvent" or name.endswith("__e") or name.endswith("__ChangeEvent"):
        return ScopeDecision(name, False, "change or platform event (not stored data)", code="event")
    if name in rules.query_restricted:
        return ScopeDecision(name, False, "cannot be queried without a filter", code="query_restricted")
    if kind == "Feed" and not rules.include_feed:
        return ScopeDecision(name, False, "Feed objects are switched off", code="feed_off")
    if kind == "Share" and not rules.include_share:
        return ScopeDecision(name, False, "Share objects are switched off", code="share_off")
    if kind == "History" and not rules.include_history:
        return ScopeDecision(name, False, "History objects are switched off", code="history_off")
    return ScopeDecision(name, True)


def select_objects(specs: Iterable[ObjectSpec], rules: ScopeRules) -> list[ScopeDecision]:
    """One decision per describeGlobal entry, in name order."""
    return [decide(s, rules) for s in sorted(specs, key=lambda s: s.name)]


FieldPermissionHook = Callable[[ObjectSpec], Mapping[str, str]]
"""Returns ``{field name: reason}`` for fields of the object the backup user cannot read."""


def extract_path(spec: ObjectSpec, rules: ScopeRules) -> ExtractPath:
    if spec.name in rules.bulk_unsupported or spec.name in rules.learned_rest_only:
        return "rest"
    return "bulk2"


def plan_object(
    spec: ObjectSpec, rules: ScopeRules, field_permissions: FieldPermissionHook | None = None
) -> ObjectPlan:
    """The SELECT list, extract path and skipped fields of an in-scope object.

    ``spec`` must be a full describe (with fields). ``Id`` comes first; the rest keep describe
    order, so the column order of every chunk of an object is stable across jobs.
    """
    selected: list[FieldSpec] = []
    skipped: list[SkippedField] = []
    blobs: list[str] = []
    for f in spec.fields:
        if f.is_compound:
            skipped.append(SkippedField(f.name, "compound field; its components are selected"))
        elif f.is_blob:
            blobs.append(f.name)
            skipped.append(SkippedField(f.name, "binary body; downloaded by the file stage"))
        else:
            selected.append(f)
    if field_permissions is not None:
        present = {f.name.lower() for f in spec.fields}
        for name, reason in sorted(field_permissions(spec).items()):
            if name.lower() in present:
                selected = [f for f in selected if f.name.lower() != name.lower()]
            skipped.append(SkippedField(name, reason or "not readable by the backup user"))
    selected.sort(key=lambda f: 0 if f.name == "Id" else 1)
    return ObjectPlan(spec, tuple(selected), extract_path(spec, rules), tuple(skipped), tuple(blobs))
