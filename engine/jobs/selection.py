"""Unknown objects in a back-up-now selection, refused when the job is asked for (decision 0029).

The job's planner refuses a selection that names objects outside the org's scope (SFV-806), but
only once the job runs: the API had already answered 202. The job service asks here first, at
admission, so the caller gets the refusal (400 SFV-806 naming every unknown object) and no job
row is written:

1. The catalog knows the objects of the org's current cycle: every object a job of the cycle
   recorded (``job_objects``), less the objects the org's settings now exclude. Names it knows
   need no call to Salesforce.
2. Names it does not know (a typo, or an object created in Salesforce since the last job) cost
   one describeGlobal (a login and one REST call): names that are not in the org's scope there,
   by the same scope rules as a job, are refused. An object created since the last job can be
   chosen at once.

An org without a full backup has no cycle: the policy refuses any selection first (SFV-606), so
this check never asks Salesforce for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog import orgs as corgs
from engine.catalog.db import transaction
from engine.catalog.models import Job, JobObject, JobState
from engine.catalog.secrets import Sealer
from engine.config import Settings
from engine.extract.client import SalesforceClient
from engine.extract.model import ObjectSpec
from engine.extract.rest import RestApi
from engine.extract.scope import ScopeRules, select_objects
from engine.jobs.credentials import catalog_sealer, client_options, grant_from_record
from engine.jobs.errors import UnknownObjects

_DONE = (JobState.SUCCEEDED.value, JobState.PARTIAL.value)


def cycle_objects(s: Session, org_id: int) -> set[str] | None:
    """Lower-cased names of the objects jobs of the org's current cycle recorded; None without a
    finished full (no cycle yet)."""
    cycle = s.scalar(
        select(Job.cycle_id)
        .where(Job.org_id == org_id, Job.kind == "full", Job.state.in_(_DONE), Job.cycle_id.is_not(None))
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
    )
    if cycle is None:
        return None
    names = s.scalars(
        select(JobObject.object_name)
        .join(Job, Job.id == JobObject.job_id)
        .where(Job.org_id == org_id, Job.cycle_id == cycle)
        .distinct()
    )
    return {n.lower() for n in names}


def _rules(org: Any) -> ScopeRules:
    st = org.settings
    return ScopeRules(
        include_feed=st.include_feed, include_share=st.include_share,
        excluded=frozenset(st.excluded_objects or ()),
    )  # fmt: skip


def _in_scope_now(record: dict[str, str], rules: ScopeRules, settings: Settings) -> set[str]:
    """Lower-cased names of the objects in the org's scope, by one describeGlobal."""
    with SalesforceClient.connect(grant_from_record(record), client_options(record, settings)) as client:
        specs = [ObjectSpec.from_describe(d) for d in RestApi(client).describe_global()["sobjects"]]
    return {d.name.lower() for d in select_objects(specs, rules) if d.included}


def _missing(wanted: Iterable[str], known: set[str]) -> list[str]:
    return [w for w in wanted if w.lower() not in known]


def check_selection(
    settings: Settings,
    sessions: sessionmaker[Session],
    org: str,
    objects: Sequence[str],
    *,
    sealer: Sealer | None = None,
) -> None:
    """Refuse a selection naming objects outside the org's scope, before a job row exists.

    Raises:
        UnknownObjects: every name of ``objects`` that is neither in the catalog's current cycle
            nor in the org's scope by describeGlobal (asked only for the names the catalog lacks).
        SealedSecretUnreadable: the credentials do not open (asked only then).
    """
    with transaction(sessions) as s:
        row = corgs.get_org_by_name(s, org)
        known = cycle_objects(s, row.id)
        if known is None:
            return  # no full yet: the policy refuses the selection (SFV-606)
        rules = _rules(row)
        excluded = {e.lower() for e in rules.excluded}
        unknown = _missing(objects, known - excluded)
        if not unknown or row.credentials_sealed is None:
            return  # all known; or no credentials, which admission refuses (SFV-803)
        record = corgs.read_credentials(row, sealer or catalog_sealer(settings))
    unknown = _missing(unknown, _in_scope_now(record, rules, settings))  # no catalog session open
    if unknown:
        raise UnknownObjects(org=org, names=", ".join(unknown))
