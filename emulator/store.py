"""The emulated org's data: one DuckDB table per sObject, plus a change log and blob bodies.

Conventions of the tables (``sf_<object>``):

* one column per field that has a column (:attr:`FieldDef.has_column`), named like the field;
  Ids and references are 18-character VARCHARs, datetimes are naive UTC ``TIMESTAMP`` with
  millisecond precision, booleans are never NULL;
* objects with ``IsDeleted`` also have a hidden ``_DeletedAt`` column (when the row went to the
  recycle bin);
* blob bodies (``Body``, ``VersionData``, ``LogFile``) are not columns: a body set through
  :meth:`OrgStore.insert` / :meth:`OrgStore.update` lives in ``_blobs``; a body the generator made
  is derived on demand from the org's blob seed and the record Id (its length is in the object's
  length field, e.g. ``BodyLength``), so millions of files cost no storage.

Every insert, update, delete, undelete and purge is written to ``_change_log`` with its clock
time, whether the record was visible to ``query`` before and after; :meth:`OrgStore.change_log`
folds that into the ground truth a backup comparison must reproduce.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb

from emulator import ids as idmod
from emulator.clock import EmulatorClock
from emulator.schema import ADDRESS_COMPONENTS, FieldDef, ObjectDef, build_schema, find_object

DB_FILE = "org.duckdb"

DUCK_TYPES = {
    "id": "VARCHAR",
    "reference": "VARCHAR",
    "string": "VARCHAR",
    "textarea": "VARCHAR",
    "picklist": "VARCHAR",
    "multipicklist": "VARCHAR",
    "email": "VARCHAR",
    "phone": "VARCHAR",
    "url": "VARCHAR",
    "currency": "DOUBLE",
    "percent": "DOUBLE",
    "double": "DOUBLE",
    "int": "BIGINT",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "time": "TIME",
    "boolean": "BOOLEAN",
}

# blob field -> the field that holds its length
BLOB_LENGTH_FIELDS = {"Body": "BodyLength", "VersionData": "ContentSize", "LogFile": "LogFileLength"}

PERSON_NAME_OBJECTS = frozenset({"Contact", "Lead", "User"})
IDS_PARAM = "(SELECT unnest(?::VARCHAR[]))"  # a list of Ids bound as one parameter


class WriteLock:
    """The store's re-entrant writer lock; each acquisition bumps :attr:`generation`.

    Every write to the tables holds this lock (the store's own methods, the generator, churn), so
    a cache built at generation ``g`` is current exactly while ``generation == g``.
    """

    def __init__(self) -> None:
        self._rlock = threading.RLock()
        self.generation = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        ok = self._rlock.acquire(blocking, timeout)
        if ok:
            self.generation += 1
        return ok

    def release(self) -> None:
        self._rlock.release()

    @property
    def exclusive(self) -> threading.RLock:
        """The same lock without bumping the generation (for readers that must see no writer)."""
        return self._rlock

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class BlobMeta:
    """What the blob endpoint needs about one record, without a query per request."""

    length: int | None
    """The body's size (None: the record has no body)."""
    content_type: str | None
    explicit: bool
    """The body was set through insert/update (it lives in ``_blobs``), not generated."""


class StoreError(ValueError):
    """A record operation the org refuses; ``error_code`` is the Salesforce errorCode."""

    def __init__(self, error_code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.fields = list(fields)

    def __reduce__(self) -> tuple[Any, ...]:
        return (StoreError, (self.error_code, self.message, self.fields))


def table_name_for(obj: ObjectDef) -> str:
    """The DuckDB table of ``obj``: ``sf_`` + the lower-cased object name."""
    return "sf_" + obj.name.lower()


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def naive_utc(dt: datetime) -> datetime:
    """``dt`` as naive UTC (how TIMESTAMP columns store it), millisecond precision."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def parse_datetime(value: str) -> datetime:
    """An ISO-8601 datetime as Salesforce clients send it (``Z``, ``+0000``, ``+00:00``), aware UTC."""
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    if len(s) >= 5 and s[-5] in "+-" and s[-4:].isdigit():
        s = s[:-2] + ":" + s[-2:]
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def blob_bytes(seed: int, record_id: str, length: int) -> bytes:
    """The deterministic body of a generated file: SHAKE-256 of the seed and the Id."""
    return hashlib.shake_256(f"sfvault-emulator:{seed}:{record_id}".encode()).digest(max(0, length))


class OrgStore:
    """One emulated org in DuckDB: a file under ``path`` (survives a restart) or in memory.

    Thread-safe: writes are serialised by a lock; readers take their own :meth:`cursor`.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        schema: dict[str, ObjectDef] | None = None,
        clock: EmulatorClock | None = None,
    ) -> None:
        self.path = path
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            database = str(path / DB_FILE)
        else:
            database = ":memory:"
        self._con = duckdb.connect(
            database,
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )
        self._con.execute("LOAD icu")
        self._con.execute("SET enable_progress_bar = false")
        self._con.execute("SET GLOBAL TimeZone = 'UTC'")
        self._lock = WriteLock()
        self._blob_meta: dict[str, tuple[int, dict[str, BlobMeta]]] = {}
        self._blob_meta_guard = threading.Lock()
        self.clock = clock or EmulatorClock()
        self.capture: Callable[..., None] | None = None
        """Called by :meth:`log_changes` inside each write's transaction (the Pub/Sub event bus)."""
        self._con.execute("CREATE TABLE IF NOT EXISTS _meta (key VARCHAR, value VARCHAR)")
        meta = dict(self._con.execute("SELECT key, value FROM _meta").fetchall())
        if schema is None:
            from emulator.schema_data import load_description

            described = json.loads(meta["schema_description"]) if meta.get("schema_description") else {}
            schema = build_schema(int(meta.get("custom_objects", "2")), load_description(described)[0])
        self.schema = schema
        for macro in idmod.id_sql_macros():
            self._con.execute(macro)
        self._create_tables()
        if "org_id" not in meta:
            meta = self._init_meta(schema)
        self.org_id: str = meta["org_id"]
        self.integration_user_id: str = meta["integration_user_id"]
        self.blob_seed = int(meta["blob_seed"])

    # -- setup ------------------------------------------------------------------------------------

    def _create_tables(self) -> None:
        con = self._con
        for obj in self.schema.values():
            cols = []
            for f in obj.column_fields:
                ddl = f"{q(f.name)} {DUCK_TYPES[f.type]}"
                if f.type == "boolean":
                    ddl += " NOT NULL DEFAULT false"
                cols.append(ddl)
            if obj.has_is_deleted:
                cols.append('"_DeletedAt" TIMESTAMP')
            con.execute(f"CREATE TABLE IF NOT EXISTS {table_name_for(obj)} ({', '.join(cols)})")
        con.execute(
            "CREATE TABLE IF NOT EXISTS _change_log (seq BIGINT, ts TIMESTAMP, object VARCHAR, id VARCHAR,"
            " kind VARCHAR, live_before BOOLEAN, live_after BOOLEAN)"
        )
        con.execute("CREATE SEQUENCE IF NOT EXISTS _change_seq START 1")
        con.execute("CREATE TABLE IF NOT EXISTS _blobs (object VARCHAR, id VARCHAR, body BLOB)")
        con.execute("CREATE TABLE IF NOT EXISTS _sequences (object VARCHAR, next BIGINT)")
        # per object, the timestamp of its last physically deleted record (see delete_log_floor)
        con.execute("CREATE TABLE IF NOT EXISTS _delete_log_floor (object VARCHAR, earliest TIMESTAMP)")

    def _init_meta(self, schema: dict[str, ObjectDef]) -> dict[str, str]:
        customs = sum(1 for o in schema.values() if o.custom)
        meta = {
            "org_id": idmod.make_id(idmod.KEY_PREFIXES["Organization"], 1),
            "integration_user_id": idmod.make_id(idmod.KEY_PREFIXES["User"], 1),
            "blob_seed": "0",
            "custom_objects": str(customs),
        }
        self._con.executemany("INSERT INTO _meta VALUES (?, ?)", list(meta.items()))
        return meta

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._con.execute("DELETE FROM _meta WHERE key = ?", [key])
            self._con.execute("INSERT INTO _meta VALUES (?, ?)", [key, value])
            if key == "blob_seed":
                self.blob_seed = int(value)

    def get_meta(self, key: str) -> str | None:
        row = self.cursor().execute("SELECT value FROM _meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    # -- basics -----------------------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB cursor (connection to the same database) for the calling thread.

        The session time zone is UTC, so ``TIMESTAMPTZ`` values come back as aware UTC datetimes.
        Close it when done (or use it as a context manager).
        """
        cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute("SET enable_progress_bar = false")
        return cur

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The store's own connection (writers hold :attr:`lock`)."""
        return self._con

    @property
    def lock(self) -> WriteLock:
        return self._lock

    def table_name(self, obj: ObjectDef) -> str:
        """The DuckDB table that holds ``obj``."""
        return table_name_for(obj)

    def object_def(self, obj_name: str) -> ObjectDef:
        """The object called ``obj_name`` (case-insensitive); ``NOT_FOUND`` otherwise."""
        obj = find_object(self.schema, obj_name)
        if obj is None:
            raise StoreError("NOT_FOUND", "The requested resource does not exist")
        return obj

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> OrgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- id sequences -----------------------------------------------------------------------------

    def reserve_counters(self, obj: ObjectDef, count: int) -> int:
        """Reserve ``count`` Id counters for ``obj``; returns the first one. Ids are never reused."""
        with self._lock:
            row = self._con.execute("SELECT next FROM _sequences WHERE object = ?", [obj.name]).fetchone()
            start = int(row[0]) if row else 1
            if row:
                self._con.execute(
                    "UPDATE _sequences SET next = ? WHERE object = ?", [start + count, obj.name]
                )
            else:
                self._con.execute("INSERT INTO _sequences VALUES (?, ?)", [obj.name, start + count])
            return start

    # -- reading ----------------------------------------------------------------------------------

    def _norm_id(self, record_id: str) -> str:
        try:
            return idmod.to18(record_id)
        except ValueError:
            raise StoreError("MALFORMED_ID", f"Id in URL is not valid: {record_id}") from None

    def get(
        self, obj_name: str, record_id: str, fields: list[str] | None = None, *, api_version: str = "59.0"
    ) -> dict[str, Any] | None:
        """The record as ``{canonical field name: typed value}``, or None if there is no such row.

        Soft-deleted rows are returned too (``IsDeleted`` is True); the REST layer answers
        ``ENTITY_IS_DELETED`` for them. Datetimes are aware UTC; address/location fields are dicts;
        a blob field's value is its REST path (``/services/data/vX/sobjects/Attachment/{id}/Body``)
        or None when there is no body. Without ``fields`` every readable field except blobs.

        Raises:
            StoreError: ``MALFORMED_ID`` for a bad Id, ``INVALID_FIELD`` for an unknown field.
        """
        obj = self.object_def(obj_name)
        rid = self._norm_id(record_id)
        if fields is None:
            wanted = [f for f in obj.readable_fields if f.type != "base64"]
        else:
            wanted = []
            for name in fields:
                fd = obj.field(name)
                if fd is None or not fd.readable:
                    raise StoreError(
                        "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'.", [name]
                    )
                wanted.append(fd)
        cols = [f.name for f in obj.column_fields]
        with self.cursor() as cur:
            row = cur.execute(
                f"SELECT {', '.join(q(c) for c in cols)} FROM {table_name_for(obj)} WHERE Id = ?", [rid]
            ).fetchone()
        if row is None:
            return None
        raw = dict(zip(cols, row, strict=True))
        out: dict[str, Any] = {}
        for fd in wanted:
            out[fd.name] = self._python_value(obj, fd, raw, rid, api_version)
        return out

    def _python_value(
        self, obj: ObjectDef, fd: FieldDef, raw: dict[str, Any], rid: str, api_version: str
    ) -> Any:
        if fd.type == "datetime":
            v = raw[fd.name]
            return None if v is None else v.replace(tzinfo=UTC)
        if fd.type == "address":
            prefix = fd.name.removesuffix("Address")
            parts: dict[str, Any] = {k: raw.get(prefix + s) for k, s in ADDRESS_COMPONENTS}
            if all(v is None for v in parts.values()):
                return None
            parts.update({"countryCode": None, "stateCode": None})
            return dict(sorted(parts.items()))
        if fd.type == "location":
            stem = fd.name.removesuffix("__c")
            lat, lon = raw.get(f"{stem}__Latitude__s"), raw.get(f"{stem}__Longitude__s")
            return None if lat is None and lon is None else {"latitude": lat, "longitude": lon}
        if fd.type == "base64":
            if self.blob_length(obj.name, rid) is None:
                return None
            return f"/services/data/v{api_version}/sobjects/{obj.name}/{rid}/{fd.name}"
        return raw[fd.name]

    def exists(self, obj_name: str, record_id: str, *, include_deleted: bool = True) -> bool:
        obj = self.object_def(obj_name)
        where = "Id = ?" + ("" if include_deleted or not obj.has_is_deleted else " AND NOT IsDeleted")
        with self.cursor() as cur:
            row = cur.execute(
                f"SELECT 1 FROM {table_name_for(obj)} WHERE {where}", [self._norm_id(record_id)]
            ).fetchone()
        return row is not None

    def blob_length(self, obj_name: str, record_id: str) -> int | None:
        """The size of the record's body, or None when the record has no body."""
        obj = self.object_def(obj_name)
        if obj.blob_field is None:
            return None
        rid = self._norm_id(record_id)
        length_field = BLOB_LENGTH_FIELDS[obj.blob_field]
        with self.cursor() as cur:
            row = cur.execute(
                f"SELECT {q(length_field)} FROM {table_name_for(obj)} WHERE Id = ?", [rid]
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0])

    def blob_meta(self, obj_name: str, record_id: str) -> BlobMeta | None:
        """Length, content type and origin of the record's body; None when there is no such row.

        Served from a per-object map that is rebuilt (one query) after any write to the store, so
        the blob endpoint costs a dict lookup instead of several point queries per request.
        """
        obj = self.object_def(obj_name)
        if obj.blob_field is None:
            return None
        rid = self._norm_id(record_id)
        gen = self._lock.generation
        cached = self._blob_meta.get(obj.name)
        if cached is None or cached[0] != gen:
            with self._blob_meta_guard:
                cached = self._blob_meta.get(obj.name)
                if cached is None or cached[0] != self._lock.generation:
                    cached = self._build_blob_meta(obj)
                    self._blob_meta[obj.name] = cached
        return cached[1].get(rid)

    def _build_blob_meta(self, obj: ObjectDef) -> tuple[int, dict[str, BlobMeta]]:
        assert obj.blob_field is not None
        length_field = BLOB_LENGTH_FIELDS[obj.blob_field]
        ctype = next((f for f in ("ContentType", "LogFileContentType") if obj.field(f) is not None), None)
        ctype_sql = f"t.{q(ctype)}" if ctype else "NULL"
        with self._lock.exclusive:  # no writer in between; does not bump the generation
            gen = self._lock.generation
            with self.cursor() as cur:
                rows = cur.execute(
                    f"SELECT t.Id, t.{q(length_field)}, {ctype_sql}, b.id IS NOT NULL"
                    f" FROM {table_name_for(obj)} t LEFT JOIN (SELECT DISTINCT id FROM _blobs"
                    " WHERE object = ?) b ON b.id = t.Id",
                    [obj.name],
                ).fetchall()
        out = {
            str(rid): BlobMeta(
                None if length is None else int(length),
                None if ct is None else str(ct),
                bool(explicit),
            )
            for rid, length, ct, explicit in rows
        }
        return gen, out

    def blob(self, obj_name: str, record_id: str) -> bytes | None:
        """The body of an Attachment / Document / ContentVersion / StaticResource / EventLogFile."""
        obj = self.object_def(obj_name)
        if obj.blob_field is None:
            return None
        rid = self._norm_id(record_id)
        stored = self._stored_body(obj.name, rid)
        if stored is not None:
            return stored
        length = self.blob_length(obj.name, rid)
        if length is None:
            return None
        return blob_bytes(self.blob_seed, rid, length)

    def blob_stream(self, obj_name: str, record_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The body in chunks (a generated body is never built whole)."""
        obj = self.object_def(obj_name)
        rid = self._norm_id(record_id)
        data = self._stored_body(obj.name, rid)
        if data is None:
            length = self.blob_length(obj.name, rid) or 0
            if length > 64 << 20:
                raise StoreError("API_ERROR", "generated bodies over 64 MB are not supported")
            data = blob_bytes(self.blob_seed, rid, length)
        for i in range(0, len(data), chunk_size):
            yield data[i : i + chunk_size]

    def _stored_body(self, object_name: str, rid: str) -> bytes | None:
        """The body a write stored (``_blobs``); None where the body is generated from the seed."""
        with self.cursor() as cur:
            row = cur.execute(
                "SELECT body FROM _blobs WHERE object = ? AND id = ?", [object_name, rid]
            ).fetchone()
        return None if row is None else bytes(row[0])

    def counts(self, include_deleted: bool = False) -> dict[str, int]:
        """Rows per object (``query`` view, or ``queryAll`` view with ``include_deleted``)."""
        out: dict[str, int] = {}
        with self.cursor() as cur:
            for obj in self.schema.values():
                where = "" if include_deleted or not obj.has_is_deleted else " WHERE NOT IsDeleted"
                if not include_deleted and obj.name in ("Task", "Event"):
                    where += " AND NOT IsArchived"
                row = cur.execute(f"SELECT count(*) FROM {table_name_for(obj)}{where}").fetchone()
                out[obj.name] = int(row[0]) if row else 0
        return out

    def digest(self) -> str:
        """SHA-256 over every table's rows in Id order (plus explicit blobs): same seed, same digest."""
        h = hashlib.sha256()
        for name, (rows, sha) in self.object_digests().items():
            h.update(f"{name}:{rows}:{sha}\n".encode())
        return h.hexdigest()

    def object_digests(self) -> dict[str, tuple[int, str]]:
        """Per object, by name, and for ``_blobs`` (the file bodies) last: the row count and a
        SHA-256 over the rows in Id order (every column and ``_DeletedAt``; deleted rows too)."""
        out: dict[str, tuple[int, str]] = {}
        with self.cursor() as cur:
            for obj in sorted(self.schema.values(), key=lambda o: o.name):
                cols = [f.name for f in obj.column_fields] + (["_DeletedAt"] if obj.has_is_deleted else [])
                # one flat call, not ``a || '|' || b ...``: 800 columns chained with ``||`` pass
                # DuckDB's expression depth limit (1000); no piece is NULL, so the text is the same
                pieces = ", ".join(f"coalesce(CAST({q(c)} AS VARCHAR), '\\N')" for c in cols)
                row = cur.execute(
                    f"SELECT count(*), sha256(coalesce(string_agg(sha256(concat_ws('|', {pieces})), ''"
                    f" ORDER BY Id), '')) FROM {table_name_for(obj)}"
                ).fetchone()
                out[obj.name] = (int(row[0]), str(row[1])) if row else (0, "")
            row = cur.execute(
                "SELECT count(*), sha256(coalesce(string_agg(object || id || md5(body::VARCHAR), ''"
                " ORDER BY object, id), '')) FROM _blobs"
            ).fetchone()
            out["_blobs"] = (int(row[0]), str(row[1])) if row else (0, "")
        return out

    # -- change log -------------------------------------------------------------------------------

    def log_changes(
        self,
        cur: duckdb.DuckDBPyConnection,
        obj: ObjectDef,
        ids_sql: str,
        params: Sequence[Any],
        kind: str,
        live_before: bool | str,
        live_after: bool,
        ts: datetime,
        fields: Sequence[str] | None = None,
    ) -> None:
        """Append one change-log row per Id that ``ids_sql`` (a query with an ``Id`` column) yields.

        ``live_before`` may be a SQL expression over that query's columns; ``fields`` are the
        fields an update assigned (for change events). Calls :attr:`capture` when it is set.
        """
        before = live_before if isinstance(live_before, str) else ("true" if live_before else "false")
        cur.execute(
            f"INSERT INTO _change_log SELECT nextval('_change_seq'), ?, ?, Id, ?, {before}, ?"
            f" FROM ({ids_sql}) AS _src ORDER BY Id",
            [naive_utc(ts), obj.name, kind, live_after, *params],
        )
        if self.capture is not None:
            self.capture(cur, obj, ids_sql, params, kind, before, ts, fields)

    def change_log(self, since: datetime) -> dict[str, dict[str, list[str]]]:
        """Per object ``{"added", "changed", "removed"}`` Ids, net of every change at or after ``since``.

        Seen from ``query`` (live rows): *added* = not live at ``since`` and live now; *removed* =
        live at ``since`` and not live now (soft-deleted or purged); *changed* = live at both ends
        and edited in between (system-only SystemModstamp bumps, kind ``touch``, do not count).
        Objects without changes are left out. Lists are sorted.
        """
        sql = """
            WITH ev AS (
                SELECT object, id,
                       arg_min(live_before, seq) AS before, arg_max(live_after, seq) AS after
                FROM _change_log WHERE ts >= ? AND kind <> 'touch' GROUP BY object, id
            )
            SELECT object, id, before, after FROM ev ORDER BY object, id
        """
        out: dict[str, dict[str, list[str]]] = {}
        with self.cursor() as cur:
            for obj_name, rid, before, after in cur.execute(sql, [naive_utc(since)]).fetchall():
                if before and after:
                    key = "changed"
                elif after:
                    key = "added"
                elif before:
                    key = "removed"
                else:
                    continue
                out.setdefault(obj_name, {"added": [], "changed": [], "removed": []})[key].append(rid)
        return out

    def updated_ids(self, obj_name: str, start: datetime, end: datetime) -> list[str]:
        """Ids of live records whose SystemModstamp (else LastModifiedDate) is in ``[start, end)``."""
        obj = self.object_def(obj_name)
        cursor_field = obj.cursor_field
        if cursor_field is None:
            return []
        deleted = " AND NOT IsDeleted" if obj.has_is_deleted else ""
        with self.cursor() as cur:
            rows = cur.execute(
                f"SELECT Id FROM {table_name_for(obj)} WHERE {q(cursor_field)} >= ? AND {q(cursor_field)} < ?"
                f"{deleted} ORDER BY Id",
                [naive_utc(start), naive_utc(end)],
            ).fetchall()
        return [r[0] for r in rows]

    def deleted_records(self, obj_name: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The delete log: ``[{"id", "deletedDate"}]`` of records deleted in ``[start, end)`` and
        still deleted, ordered by ``deletedDate``.

        A deletion is a soft delete (to the recycle bin) or a hard delete of a live row (``purge``
        of a row that ``query`` saw); its date is when it happened. A record purged later from the
        recycle bin keeps its entry (its soft delete). What the log can no longer answer for is
        decided by :meth:`delete_log_floor`, not here.
        """
        obj = self.object_def(obj_name)
        # only Ids with a deletion in the window can qualify (their last deletion is then at or
        # after start): the log of an object holds every insert too, and grouping all of it by Id
        # was most of the emulator's work in an incremental
        sql = """
            WITH hit AS (
                SELECT DISTINCT id FROM _change_log
                WHERE object = ? AND (kind = 'delete' OR (kind = 'purge' AND live_before))
                  AND ts >= ? AND ts < ?
            ), last AS (
                SELECT c.id, arg_max(c.live_after, c.seq) AS live,
                       max(c.ts) FILTER (WHERE c.kind = 'delete' OR (c.kind = 'purge' AND c.live_before))
                           AS deleted_at
                FROM _change_log c SEMI JOIN hit ON c.id = hit.id
                WHERE c.object = ? GROUP BY c.id
            )
            SELECT id, deleted_at FROM last
            WHERE NOT live AND deleted_at >= ? AND deleted_at < ? ORDER BY deleted_at, id
        """
        window = [naive_utc(start), naive_utc(end)]
        with self.cursor() as cur:
            rows = cur.execute(sql, [obj.name, *window, obj.name, *window]).fetchall()
        return [{"id": r[0], "deletedDate": r[1].replace(tzinfo=UTC)} for r in rows]

    def delete_log_floor(self, obj_name: str) -> datetime | None:
        """When the object's last physically deleted record was deleted (UTC), None if none was.

        Salesforce documents ``earliestDateAvailable`` as "the timestamp of the last physically
        deleted object" of the type: emptying the recycle bin (by hand or by its 15-day auto
        purge) and hard deletes move it forward, never back. For a record purged from the recycle
        bin that is when it was soft-deleted; for a hard-deleted live record, when it was purged.
        """
        obj = self.object_def(obj_name)
        with self.cursor() as cur:
            row = cur.execute(
                "SELECT max(earliest) FROM _delete_log_floor WHERE object = ?", [obj.name]
            ).fetchone()
        return None if row is None or row[0] is None else row[0].replace(tzinfo=UTC)

    # -- writing ----------------------------------------------------------------------------------

    def _coerce(self, obj: ObjectDef, fd: FieldDef, value: Any) -> Any:
        if value is None:
            if fd.type == "boolean":
                return False
            return None
        try:
            if fd.type in ("id", "reference"):
                return idmod.to18(str(value))
            if fd.type == "boolean":
                if isinstance(value, str):
                    return value.strip().lower() in ("true", "1")
                return bool(value)
            if fd.type == "int":
                return int(value)
            if fd.type in ("double", "currency", "percent"):
                return float(value)
            if fd.type == "datetime":
                dt = parse_datetime(value) if isinstance(value, str) else value
                return naive_utc(dt)
            if fd.type == "date":
                if isinstance(value, datetime):
                    return value.date()
                return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
            if fd.type == "time":
                if isinstance(value, time):
                    return value
                return time.fromisoformat(str(value).rstrip("Z"))
            if fd.type == "multipicklist" and isinstance(value, list | tuple):
                return ";".join(str(v) for v in value)
            if isinstance(value, str):
                return value
            return str(value)
        except ValueError:
            raise StoreError(
                "INVALID_FIELD_FOR_INSERT_UPDATE" if fd.type not in ("id", "reference") else "MALFORMED_ID",
                f"{fd.name}: bad value for {fd.type} field: {value!r}",
                [fd.name],
            ) from None

    def _split_values(
        self, obj: ObjectDef, values: dict[str, Any], *, insert: bool
    ) -> tuple[dict[str, Any], bytes | None]:
        cols: dict[str, Any] = {}
        body: bytes | None = None
        for key, value in values.items():
            if key == "attributes":
                continue
            fd = obj.field(key)
            if fd is None or not fd.readable:
                raise StoreError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key]
                )
            if fd.name == "Id":
                continue
            if fd.type == "base64":
                if value is None:
                    continue
                body = bytes(value) if isinstance(value, bytes | bytearray) else base64.b64decode(value)
                continue
            if fd.type in ("address", "location"):
                raise StoreError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {fd.name}.",
                    [fd.name],
                )
            cols[fd.name] = self._coerce(obj, fd, value)
        if insert:
            missing = [
                f.name for f in obj.column_fields
                if not f.nillable and not f.defaulted_on_create and f.createable and f.name not in cols
                and not (f.name == "Name" and obj.name in PERSON_NAME_OBJECTS)
            ]  # fmt: skip
            if missing:
                raise StoreError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
                )
        return cols, body

    def insert(self, obj_name: str, values: dict[str, Any]) -> str:
        """Create a record; returns its 18-character Id. Audit fields come from the clock.

        Raises:
            StoreError: ``INVALID_FIELD``, ``REQUIRED_FIELD_MISSING``, ``MALFORMED_ID`` ...
        """
        return self.insert_many(obj_name, [values])[0]

    def insert_many(self, obj_name: str, rows: Sequence[dict[str, Any]]) -> list[str]:
        """Create several records in one transaction; returns their Ids in order."""
        obj = self.object_def(obj_name)
        if not obj.key_prefix:
            raise StoreError("INVALID_TYPE", f"sObject type '{obj.name}' cannot be created.")
        prepared = [self._split_values(obj, r, insert=True) for r in rows]
        now = naive_utc(self.clock.now())
        with self._lock:
            start = self.reserve_counters(obj, len(prepared))
            new_ids = [idmod.make_id(obj.key_prefix, start + i) for i in range(len(prepared))]
            cur = self._con
            cur.execute("BEGIN TRANSACTION")
            try:
                for rid, (cols, body) in zip(new_ids, prepared, strict=True):
                    full = self._defaults(obj, now)
                    full.update(cols)
                    full["Id"] = rid
                    if obj.name in PERSON_NAME_OBJECTS:
                        full["Name"] = " ".join(p for p in (full.get("FirstName"), full.get("LastName")) if p)
                    if body is not None and obj.blob_field:
                        full[BLOB_LENGTH_FIELDS[obj.blob_field]] = len(body)
                        cur.execute("INSERT INTO _blobs VALUES (?, ?, ?)", [obj.name, rid, body])
                    names = list(full)
                    cur.execute(
                        f"INSERT INTO {table_name_for(obj)} ({', '.join(q(n) for n in names)})"
                        f" VALUES ({', '.join('?' for _ in names)})",
                        [full[n] for n in names],
                    )
                self.log_changes(
                    cur, obj, "SELECT unnest(?::VARCHAR[]) AS Id", [new_ids], "insert", False, True, now
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return new_ids

    def _defaults(self, obj: ObjectDef, now: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in obj.column_fields:
            if f.type == "boolean":
                out[f.name] = f.name in ("IsActive", "IsLatest")
            elif f.type == "picklist" and not f.nillable and f.defaulted_on_create and f.picklist_values:
                out[f.name] = f.picklist_values[0]
        for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            if obj.field(name):
                out[name] = now
        for name in ("CreatedById", "LastModifiedById", "OwnerId"):
            if obj.field(name):
                out[name] = self.integration_user_id
        return out

    def _require_rows(self, obj: ObjectDef, ids: list[str], *, live: bool | None) -> None:
        with self.cursor() as cur:
            found = dict(
                cur.execute(
                    f"SELECT Id, {'IsDeleted' if obj.has_is_deleted else 'false'} FROM {table_name_for(obj)}"
                    " WHERE Id IN (SELECT unnest(?::VARCHAR[]))",
                    [ids],
                ).fetchall()
            )
        for rid in ids:
            if rid not in found:
                raise StoreError("NOT_FOUND", "The requested resource does not exist")
            if live is True and found[rid]:
                raise StoreError("ENTITY_IS_DELETED", "entity is deleted")
            if live is False and not found[rid]:
                raise StoreError("UNDELETE_FAILED", "Entity is not in the recycle bin")

    def update(self, obj_name: str, record_id: str, values: dict[str, Any]) -> None:
        """Change fields of a live record; bumps LastModifiedDate and SystemModstamp from the clock.

        Raises:
            StoreError: ``NOT_FOUND``, ``ENTITY_IS_DELETED``, ``INVALID_FIELD`` ...
        """
        self.update_many(obj_name, [record_id], values)

    def update_many(
        self,
        obj_name: str,
        record_ids: Sequence[str],
        values: dict[str, Any] | None = None,
        *,
        set_sql: dict[str, str] | None = None,
        system_only: bool = False,
    ) -> None:
        """Apply the same change to several live records in one transaction.

        ``set_sql`` maps field names to SQL expressions over the row (used by churn);
        ``system_only`` moves only SystemModstamp, as Salesforce's own background updates do.
        """
        obj = self.object_def(obj_name)
        ids = [self._norm_id(r) for r in record_ids]
        cols, body = self._split_values(obj, values or {}, insert=False)
        if obj.name in PERSON_NAME_OBJECTS and ("FirstName" in cols or "LastName" in cols):
            set_sql = dict(set_sql or {})
            first = "?" if "FirstName" in cols else '"FirstName"'
            last = "?" if "LastName" in cols else '"LastName"'
            # evaluated with the column values below, in the same SET list
            set_sql.setdefault("Name", f"concat_ws(' ', nullif({first}, ''), {last})")
        now = naive_utc(self.clock.now())
        assignments: list[str] = []
        params: list[Any] = []
        for name, value in cols.items():
            assignments.append(f"{q(name)} = ?")
            params.append(value)
        for name, expr in (set_sql or {}).items():
            fd = obj.field(name)
            if fd is None or not fd.has_column:
                raise StoreError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}", [name]
                )
            assignments.append(f"{q(fd.name)} = {expr}")
            if name == "Name" and obj.name in PERSON_NAME_OBJECTS and "?" in expr:
                if "FirstName" in cols:
                    params.append(cols["FirstName"])
                if "LastName" in cols:
                    params.append(cols["LastName"])
        if not system_only:
            for name in ("LastModifiedDate",):
                if obj.field(name):
                    assignments.append(f"{q(name)} = ?")
                    params.append(now)
            if obj.field("LastModifiedById"):
                assignments.append('"LastModifiedById" = ?')
                params.append(self.integration_user_id)
        if obj.field("SystemModstamp"):
            assignments.append('"SystemModstamp" = ?')
            params.append(now)
        if body is not None and obj.blob_field:
            assignments.append(f"{q(BLOB_LENGTH_FIELDS[obj.blob_field])} = ?")
            params.append(len(body))
        with self._lock:
            self._require_rows(obj, ids, live=True)
            cur = self._con
            cur.execute("BEGIN TRANSACTION")
            try:
                if assignments:
                    cur.execute(
                        f"UPDATE {table_name_for(obj)} SET {', '.join(assignments)}"
                        " WHERE Id IN (SELECT unnest(?::VARCHAR[]))",
                        [*params, ids],
                    )
                if body is not None:
                    cur.execute(
                        "DELETE FROM _blobs WHERE object = ? AND id IN (SELECT unnest(?::VARCHAR[]))",
                        [obj.name, ids],
                    )
                    cur.executemany("INSERT INTO _blobs VALUES (?, ?, ?)", [[obj.name, r, body] for r in ids])
                kind = "touch" if system_only and not cols and not set_sql else "update"
                assigned = [a.split(" = ", 1)[0].strip('"') for a in assignments]
                self.log_changes(
                    cur, obj, "SELECT unnest(?::VARCHAR[]) AS Id", [ids], kind, True, True, now, assigned
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def delete(self, obj_name: str, record_id: str) -> None:
        """Move a record to the recycle bin (``IsDeleted = true``), visible to queryAll until purged.

        Objects without ``IsDeleted`` are deleted for good.
        """
        self.delete_many(obj_name, [record_id])

    def delete_many(self, obj_name: str, record_ids: Sequence[str]) -> None:
        obj = self.object_def(obj_name)
        ids = [self._norm_id(r) for r in record_ids]
        if not obj.has_is_deleted:
            self.purge_many(obj.name, ids)
            return
        now = naive_utc(self.clock.now())
        sets = ["IsDeleted = true", '"_DeletedAt" = ?']
        params: list[Any] = [now]
        if obj.field("SystemModstamp"):
            sets.append('"SystemModstamp" = ?')
            params.append(now)
        self._move_to_or_from_recycle_bin(obj, ids, sets, params, "delete", now)

    def undelete(self, obj_name: str, record_id: str) -> None:
        """Restore a record from the recycle bin (bumps LastModifiedDate and SystemModstamp)."""
        self.undelete_many(obj_name, [record_id])

    def undelete_many(self, obj_name: str, record_ids: Sequence[str]) -> None:
        obj = self.object_def(obj_name)
        if not obj.has_is_deleted:
            raise StoreError("UNDELETE_FAILED", f"{obj.name} records cannot be undeleted")
        ids = [self._norm_id(r) for r in record_ids]
        now = naive_utc(self.clock.now())
        sets = ["IsDeleted = false", '"_DeletedAt" = NULL']
        params: list[Any] = []
        for name in ("LastModifiedDate", "SystemModstamp"):
            if obj.field(name):
                sets.append(f"{q(name)} = ?")
                params.append(now)
        self._move_to_or_from_recycle_bin(obj, ids, sets, params, "undelete", now)

    def _move_to_or_from_recycle_bin(
        self, obj: ObjectDef, ids: list[str], sets: list[str], params: list[Any], kind: str, now: Any
    ) -> None:
        """Apply ``sets`` to live rows (delete) or recycle-bin rows (undelete) and log it, atomically."""
        deleting = kind == "delete"
        with self._lock:
            self._require_rows(obj, ids, live=deleting)
            cur = self._con
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.execute(
                    f"UPDATE {table_name_for(obj)} SET {', '.join(sets)} WHERE Id IN {IDS_PARAM}",
                    [*params, ids],
                )
                self.log_changes(
                    cur, obj, "SELECT unnest(?::VARCHAR[]) AS Id", [ids], kind, deleting, not deleting, now
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def purge(self, obj_name: str, record_id: str) -> None:
        """Delete a record for good (from the recycle bin or straight from live data)."""
        self.purge_many(obj_name, [record_id])

    def purge_many(self, obj_name: str, record_ids: Sequence[str]) -> None:
        obj = self.object_def(obj_name)
        ids = [self._norm_id(r) for r in record_ids]
        now = naive_utc(self.clock.now())
        live = "NOT IsDeleted" if obj.has_is_deleted else "true"
        with self._lock:
            self._require_rows(obj, ids, live=None)
            cur = self._con
            cur.execute("BEGIN TRANSACTION")
            try:
                self.log_changes(
                    cur, obj,
                    f"SELECT Id, {live} AS _live FROM {table_name_for(obj)} WHERE Id IN {IDS_PARAM}",
                    [ids], "purge", "_live", False, now,
                )  # fmt: skip
                # the delete log loses what it held up to the newest physically deleted record
                when = '"_DeletedAt"' if obj.has_is_deleted else "NULL"
                cur.execute(
                    f"INSERT INTO _delete_log_floor SELECT ?, max(coalesce({when}, ?))"
                    f" FROM {table_name_for(obj)} WHERE Id IN {IDS_PARAM} HAVING count(*) > 0",
                    [obj.name, now, ids],
                )
                cur.execute(
                    f"DELETE FROM {table_name_for(obj)} WHERE Id IN (SELECT unnest(?::VARCHAR[]))", [ids]
                )
                cur.execute(
                    "DELETE FROM _blobs WHERE object = ? AND id IN (SELECT unnest(?::VARCHAR[]))",
                    [obj.name, ids],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def archive_activities(
        self, limit: int | None = None, older_than: timedelta = timedelta(days=365)
    ) -> dict[str, int]:
        """Run Salesforce's activity archiving: live Events whose date, and closed Tasks whose due
        date (or, without one, creation date), is ``older_than`` ago become ``IsArchived``; at most
        ``limit`` rows per object, oldest first. Returns the rows archived per object.

        ``query`` hides archived rows and only ``queryAll`` returns them. Timestamps do not move:
        Salesforce documents none for this background process, and an unchanged ``SystemModstamp``
        is the hard case for a backup (the row leaves ``query`` without entering any window).
        """
        cutoff = naive_utc(self.clock.now() - older_than)
        due = {
            "Event": 'coalesce("ActivityDateTime", CAST("ActivityDate" AS TIMESTAMP))',
            "Task": 'coalesce(CAST("ActivityDate" AS TIMESTAMP), "CreatedDate")',
        }
        closed = {"Event": "true", "Task": '"IsClosed"'}
        out: dict[str, int] = {}
        for name, when in due.items():
            obj = self.schema.get(name)
            if obj is None or obj.field("IsArchived") is None:
                continue
            table = table_name_for(obj)
            cap = "" if limit is None else f" LIMIT {int(limit)}"
            with self._lock:
                cur = self._con
                rows = cur.execute(
                    f"SELECT Id FROM {table} WHERE NOT IsDeleted AND NOT IsArchived AND {closed[name]}"
                    f" AND {when} <= ? ORDER BY {when}, Id{cap}",
                    [cutoff],
                ).fetchall()
                ids = [r[0] for r in rows]
                if ids:
                    cur.execute(
                        f"UPDATE {table} SET IsArchived = true WHERE Id IN (SELECT unnest(?::VARCHAR[]))",
                        [ids],
                    )
            out[name] = len(ids)
        return out

    def empty_recycle_bin(self, older_than: timedelta = timedelta(days=15)) -> int:
        """Purge soft-deleted rows deleted before ``now - older_than``; returns how many."""
        cutoff = naive_utc(self.clock.now() - older_than)
        total = 0
        for obj in self.schema.values():
            if not obj.has_is_deleted:
                continue
            with self.cursor() as cur:
                rows = cur.execute(
                    f'SELECT Id FROM {table_name_for(obj)} WHERE IsDeleted AND "_DeletedAt" < ?', [cutoff]
                ).fetchall()
            if rows:
                self.purge_many(obj.name, [r[0] for r in rows])
                total += len(rows)
        return total
