"""Seeded churn: the inserts, updates, deletes, undeletes and purges an org sees between backups.

Every change goes through the store's bulk operations, so it is stamped by ``store.clock``
(all changes of one call share one SystemModstamp — exactly the duplicate-timestamp case a
cursor must survive) and lands in the change log that :meth:`OrgStore.change_log` folds into
ground truth. Which rows change is a pure function of the seed and the Ids.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from emulator import ids as idmod
from emulator.generator import _Ctx, _epoch_us, insert_generated
from emulator.store import OrgStore, q

SPAN_US = 730 * 86_400_000_000

# objects that churn; immutable ones (AccountHistory, AccountFeed) only get inserts
CHURN_OBJECTS = ("Account", "Contact", "Lead", "Opportunity", "Case", "Task", "Event", "Attachment")
INSERT_ONLY = ("AccountHistory", "AccountFeed")
UPDATE_FIELDS = ("Description", "Notes__c", "Subject", "Title")


@dataclass
class ChurnSummary:
    """Rows affected per object and kind of change (``touched`` = system-only SystemModstamp bumps)."""

    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    undeleted: dict[str, int] = field(default_factory=dict)
    purged: dict[str, int] = field(default_factory=dict)
    touched: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(
            sum(d.values()) for d in (self.inserted, self.updated, self.deleted, self.undeleted, self.purged)
        )


def _pick_ids(store: OrgStore, table: str, where: str, salt: str, seed: int, n: int) -> list[str]:
    if n <= 0:
        return []
    with store.cursor() as cur:
        rows = cur.execute(
            f"SELECT Id FROM {table} WHERE {where} ORDER BY hash(Id, ?, ?) LIMIT ?", [seed, salt, n]
        ).fetchall()
    return sorted(r[0] for r in rows)


def _clear_dangling_references(store: OrgStore, obj_name: str, first: int) -> None:
    """Null the optional lookups of the rows from counter ``first`` on that point at purged parents.

    Churn picks parents by counter, and purged counters are never reused, so a new row may name a
    parent that no longer exists; Salesforce would never store such a lookup. Runs inside the
    insert's transaction (``insert_generated(fix_rows=...)``), before its rows are logged: the CREATE
    events carry the lookups as stored (an UPDATE here afterwards would be a change without an event).
    """
    obj = store.schema[obj_name]
    table = store.table_name(obj)
    first_id = idmod.make_id(obj.key_prefix or "000", first)
    with store.lock:
        for f in obj.column_fields:
            targets = [store.schema[t] for t in f.reference_to if t in store.schema]
            if f.type != "reference" or not f.nillable or not targets:
                continue
            union = " UNION ALL ".join(f"SELECT Id FROM {store.table_name(t)}" for t in targets)
            store.connection.execute(
                f"UPDATE {table} SET {q(f.name)} = NULL WHERE Id >= ? AND {q(f.name)} IS NOT NULL"
                f" AND {q(f.name)} NOT IN ({union})",
                [first_id],
            )


def churn(store: OrgStore, percent: float, seed: int, *, purges: bool = True) -> ChurnSummary:
    """Change about ``percent`` % of the live rows of each churning object.

    Per object, with ``k = percent`` % of its live rows: ``k`` inserts, ``k`` updates (a fifth
    of them system-only SystemModstamp bumps), ``k/2`` soft deletes, undeletes of a quarter of
    the recycle bin's rows, purges of a fifth of it and ``k/10`` hard deletes of live rows.
    With ``purges=False`` nothing is physically deleted (no purges, no hard deletes: the
    recycle bin is not emptied), so the delete log keeps covering every window.
    """
    summary = ChurnSummary()
    schema = store.schema
    names = [n for n in (*CHURN_OBJECTS, *INSERT_ONLY) if n in schema]
    names += [n for n, o in schema.items() if o.custom]
    live_counts = store.counts()
    all_counts = store.counts(include_deleted=True)
    blob_seed = store.blob_seed
    n_users = max(1, all_counts.get("User", 1))
    ranges: dict[str, tuple[int, int]] = {}
    with store.cursor() as cur:
        for obj_name, nxt in cur.execute("SELECT object, next FROM _sequences").fetchall():
            ranges[obj_name] = (1, max(0, int(nxt) - 1))
    ctx = _Ctx(
        store=store,
        seed=seed * 7919 + blob_seed,
        now_us=_epoch_us(store.clock.now()),
        span_us=SPAN_US,
        file_body_bytes=int(store.get_meta("file_body_bytes") or 4096),
        ranges=ranges,
        active_users=(1, max(1, int(n_users * 0.8))),
    )
    for name in names:
        obj = schema[name]
        table = store.table_name(obj)
        live = live_counts.get(name, 0)
        k = round(live * percent / 100.0)
        if k <= 0 and live > 0 and percent > 0:
            k = 1
        live_where = "NOT IsDeleted" + (" AND NOT IsArchived" if name in ("Task", "Event") else "")

        # recycle bin first: undelete some, purge others
        if obj.has_is_deleted and name not in INSERT_ONLY:
            binned = all_counts.get(name, 0) - live
            binned_where = "IsDeleted" + (" AND NOT IsArchived" if name in ("Task", "Event") else "")
            und = _pick_ids(store, table, binned_where, "undelete", seed, max(0, binned // 4))
            if und:
                store.undelete_many(name, und)
                summary.undeleted[name] = len(und)
            pur = _pick_ids(store, table, "IsDeleted", "purge", seed, max(0, binned // 5)) if purges else []
            if pur:
                store.purge_many(name, pur)
                summary.purged[name] = len(pur)

        # inserts (fresh rows created "now")
        if k > 0:
            first = store.reserve_counters(obj, k)
            fix = functools.partial(_clear_dangling_references, store, obj.name, first)
            insert_generated(ctx, obj, first, k, fresh=True, fix_rows=fix)
            summary.inserted[name] = k
            ranges[name] = (1, first + k - 1)

        if name in INSERT_ONLY or live == 0:
            continue
        # updates of a text field; a fifth are system-only touches
        upd = _pick_ids(store, table, live_where, "update", seed, k)
        touch = upd[: len(upd) // 5]
        upd = upd[len(upd) // 5 :]
        field_name = next((f for f in UPDATE_FIELDS if obj.field(f) is not None), "Name")
        fd = obj.field(field_name)
        if upd and fd is not None and fd.updateable:
            expr = (
                f"'updated ' || CAST(hash(Id, {int(seed)}) % 100000 AS VARCHAR) || ' ' || "
                f"coalesce(left({q(fd.name)}, 200), '')"
            )
            store.update_many(name, upd, set_sql={fd.name: expr})
            summary.updated[name] = len(upd)
        if touch:
            store.update_many(name, touch, system_only=True)
            summary.touched[name] = len(touch)
        # soft deletes, then a few hard deletes straight from live data
        dele = _pick_ids(store, table, live_where, "delete", seed, k // 2)
        if dele and obj.deletable:
            store.delete_many(name, dele)
            summary.deleted[name] = len(dele)
        hard = _pick_ids(store, table, live_where, "hard", seed, k // 10) if purges else []
        if hard and obj.deletable:
            store.purge_many(name, hard)
            summary.purged[name] = summary.purged.get(name, 0) + len(hard)
    return summary
