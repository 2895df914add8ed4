"""The REST API under ``/services/data`` (SALESFORCE_API.md §2).

Versions, the resource map, describeGlobal, describe, ``query``/``queryAll`` with
``nextRecordsUrl`` paging, ``limits``, record get/create/update/delete, ``updated``/``deleted``
and the blob endpoints. Every error is Salesforce's JSON list ``[{"message", "errorCode"}]``.

A query with more rows than one page is materialised once into an Arrow IPC file (memory
mapped), so every page is a cheap slice, a locator can be fetched again, and ``queryAll``
cursors keep including deleted rows. At most ``MAX_OPEN_CURSORS`` cursors stay open (the oldest
is dropped, then its locator answers ``INVALID_QUERY_LOCATOR``), and idle ones expire.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from emulator import ids as idmod
from emulator.context import ApiError, api_versions, not_found, release_label
from emulator.schema import describe_global, describe_object, find_object

if TYPE_CHECKING:
    from emulator.context import Org
    from emulator.schema import ObjectDef

JSON_UTF8 = "application/json;charset=UTF-8"
MAX_OPEN_CURSORS = 10
CURSOR_IDLE_S = 15 * 60
MIN_BATCH, MAX_BATCH = 200, 2000
UPDATED_WINDOW = timedelta(days=30)
DELETED_WINDOW = timedelta(days=15)
MAX_REPLICATION_IDS = 600_000
SCHEMA_LOADED_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
"""The schema never changes while the emulator runs: describe answers 304 to anything newer."""


def fmt_datetime(value: datetime) -> str:
    """REST JSON datetime: ``2024-03-05T14:07:22.000+0000`` (UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def fmt_time(value: dtime) -> str:
    return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def json_value(ftype: str | None, value: Any) -> Any:
    """A typed store value as REST JSON shows it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return fmt_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dtime):
        return fmt_time(value)
    if ftype == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if ftype in ("double", "currency", "percent") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        return {k: json_value(None, v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return value


def record_url(version: str, obj_name: str, record_id: str) -> str:
    return f"/services/data/v{version}/sobjects/{obj_name}/{record_id}"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers, media_type=JSON_UTF8)


# --- query shaping ------------------------------------------------------------------------------


@dataclass
class Shape:
    """How the rows of ``Translated.rest_sql`` become nested JSON records.

    A row holds the selected columns, then the record's Id, then one parent Id per relationship
    path (``Owner``, ``Account.Owner``); a null parent Id makes that parent ``null``.
    """

    obj: ObjectDef
    columns: list[str]
    types: list[str | None]
    id_col: int | None
    relations: dict[str, tuple[str, int | None]]
    """relationship path -> (parent object name, index of its Id in the row or None)"""
    aggregate: bool
    prefixes: dict[str, str]


def build_shape(schema: dict[str, ObjectDef], t: Any, *, with_ids: bool) -> Shape:
    cols = list(t.columns)
    n = len(cols)
    types = list(t.field_types) if len(t.field_types) == n else [None] * n
    relations: dict[str, tuple[str, int | None]] = {}
    for i, (path, sobject) in enumerate(getattr(t, "relationships", []) or []):
        relations[path.lower()] = (sobject, n + 1 + i if with_ids else None)
    prefixes = {o.key_prefix: o.name for o in schema.values() if o.key_prefix and not o.associate_entity_type}
    return Shape(
        obj=t.object,
        columns=cols,
        types=types,
        id_col=n if with_ids else None,
        relations=relations,
        aggregate=bool(t.has_aggregate),
        prefixes=prefixes,
    )


def render_rows(shape: Shape, rows: list[tuple[Any, ...]], version: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    obj_name = shape.obj.name
    for row in rows:
        if shape.aggregate:
            rec: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
            for i, c in enumerate(shape.columns):
                rec[c] = json_value(shape.types[i], row[i])
            out.append(rec)
            continue
        attrs: dict[str, Any] = {"type": obj_name}
        rid = row[shape.id_col] if shape.id_col is not None else None
        if rid is not None:
            attrs["url"] = record_url(version, obj_name, rid)
        rec = {"attributes": attrs}
        for i, c in enumerate(shape.columns):
            value = json_value(shape.types[i], row[i])
            if "." not in c:
                rec[c] = value
                continue
            parts = c.split(".")
            target: dict[str, Any] | None = rec
            for depth in range(len(parts) - 1):
                assert target is not None
                key = parts[depth]
                if key not in target:
                    path = ".".join(parts[: depth + 1]).lower()
                    sobject, idx = shape.relations.get(path, (key, None))
                    pid = row[idx] if idx is not None else None
                    if idx is not None and pid is None:
                        target[key] = None
                    else:
                        ptype = shape.prefixes.get(str(pid)[:3], sobject) if pid else sobject
                        pattrs: dict[str, Any] = {"type": ptype}
                        if pid is not None:
                            pattrs["url"] = record_url(version, ptype, pid)
                        target[key] = {"attributes": pattrs}
                target = target[key]
                if target is None:
                    break
            if target is not None:
                target[parts[-1]] = value
        out.append(rec)
    return out


# --- cursors ------------------------------------------------------------------------------------


@dataclass
class QueryCursor:
    id: str
    path: Path
    total: int
    shape: Shape
    batch_size: int
    last_used: float
    table: pa.Table | None = None


class QueryCursors:
    """Open query locators (Arrow IPC files), oldest dropped first. Thread-safe."""

    def __init__(self, directory: Path, max_open: int = MAX_OPEN_CURSORS) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.max_open = max_open
        self._lock = threading.Lock()
        self._cursors: OrderedDict[str, QueryCursor] = OrderedDict()
        self._seq = itertools.count(int(time.time()) % 1_000_000 * 1000)

    def new_id(self) -> str:
        return idmod.make_id("01g", next(self._seq))

    def add(self, cursor: QueryCursor) -> None:
        dropped: list[QueryCursor] = []
        with self._lock:
            self._cursors[cursor.id] = cursor
            now = time.monotonic()
            for key, c in list(self._cursors.items()):
                if now - c.last_used > CURSOR_IDLE_S:
                    dropped.append(self._cursors.pop(key))
            while len(self._cursors) > self.max_open:
                dropped.append(self._cursors.popitem(last=False)[1])
        for c in dropped:
            c.table = None
            c.path.unlink(missing_ok=True)

    def get(self, cursor_id: str) -> QueryCursor | None:
        with self._lock:
            c = self._cursors.get(cursor_id)
            if c is None:
                return None
            if time.monotonic() - c.last_used > CURSOR_IDLE_S:
                self._cursors.pop(cursor_id)
                c.path.unlink(missing_ok=True)
                return None
            c.last_used = time.monotonic()
            return c

    def drop(self, cursor_id: str) -> None:
        with self._lock:
            c = self._cursors.pop(cursor_id, None)
        if c is not None:
            c.table = None
            c.path.unlink(missing_ok=True)

    def open_count(self) -> int:
        with self._lock:
            return len(self._cursors)

    def shutdown(self) -> None:
        with self._lock:
            self._cursors.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def batch_size(query_options: str | None) -> int:
    """The page size a ``Sforce-Query-Options`` header value asks for (200-2,000; 2,000 without)."""
    m = re.search(r"batchSize\s*=\s*(\d+)", query_options or "", re.IGNORECASE)
    if not m:
        return MAX_BATCH
    return max(MIN_BATCH, min(MAX_BATCH, int(m.group(1))))


def query_more(org: Org, locator: str, version: str, query_options: str | None) -> dict[str, Any]:
    """The page of an open cursor at ``locator`` (``<cursor id>-<offset>``); its own batch size
    unless ``query_options`` sets one."""
    cursor_id, _, offset_raw = locator.partition("-")
    cursor = org.cursors.get(cursor_id)
    if cursor is None or not offset_raw.isdigit() or int(offset_raw) > cursor.total:
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    batch = batch_size(query_options) if query_options else cursor.batch_size
    return page(cursor, int(offset_raw), version, batch)


def translate_query(org: Org, soql: str, version: str, include_deleted: bool) -> Any:
    """``soql`` translated for the session user (a Salesforce error as :class:`ApiError`)."""
    from emulator.files import hidden_files_user
    from emulator.soql import SoqlError, translate

    try:
        return translate(
            soql, org.schema, include_deleted=include_deleted, api_version=version,
            now=org.store.clock.now(), files_visible_to=hidden_files_user(org.store, org.user_id),
        )  # fmt: skip
    except SoqlError as exc:
        raise ApiError(400, exc.error_code, exc.message) from None


def query_columns(org: Org, soql: str, version: str, include_deleted: bool) -> dict[str, Any]:
    """``query?q=...&columns=true``: the statement's column metadata, no rows."""
    from emulator.columns import column_metadata

    t = translate_query(org, soql, version, include_deleted)
    return column_metadata(soql, t.object, org.schema)


def run_query(org: Org, soql: str, version: str, include_deleted: bool, batch: int) -> dict[str, Any]:
    schema = org.schema
    t = translate_query(org, soql, version, include_deleted)
    if t.is_count:
        with org.store.cursor() as cur:
            row = cur.execute(t.count_sql or t.total_sql, list(t.params)).fetchone()
        return {"totalSize": int(row[0]) if row else 0, "done": True, "records": []}
    with_ids = bool(t.rest_sql) and not t.has_aggregate
    shape = build_shape(schema, t, with_ids=with_ids)
    sql = t.rest_sql if with_ids else t.sql
    with org.store.cursor() as cur:
        reader = cur.sql(sql, params=list(t.params)).to_arrow_reader(max(batch, 8192))
        assert reader is not None
        first: list[pa.RecordBatch] = []
        rows = 0
        for b in reader:
            first.append(b)
            rows += b.num_rows
            if rows > batch:
                break
        if rows <= batch:
            table = pa.Table.from_batches(first, schema=reader.schema)
            return {"totalSize": rows, "done": True, "records": render_rows(shape, _tuples(table), version)}
        cursor_id = org.cursors.new_id()
        path = org.cursors.directory / f"{cursor_id}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
            for b in first:
                writer.write_batch(b)
            for b in reader:
                writer.write_batch(b)
                rows += b.num_rows
    cursor = QueryCursor(cursor_id, path, rows, shape, batch, time.monotonic())
    org.cursors.add(cursor)
    return page(cursor, 0, version, batch)


def _tuples(table: pa.Table) -> list[tuple[Any, ...]]:
    cols = [c.to_pylist() for c in table.columns]
    return list(zip(*cols, strict=True)) if cols else []


def _table(cursor: QueryCursor) -> pa.Table:
    if cursor.table is None:
        cursor.table = pa.ipc.open_file(pa.memory_map(str(cursor.path))).read_all()
    return cursor.table


def page(cursor: QueryCursor, offset: int, version: str, batch: int) -> dict[str, Any]:
    table = _table(cursor).slice(offset, batch)
    end = offset + table.num_rows
    body: dict[str, Any] = {"totalSize": cursor.total, "done": end >= cursor.total}
    if end < cursor.total:
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor.id}-{end}"
    body["records"] = render_rows(cursor.shape, _tuples(table), version)
    return body


# --- replication --------------------------------------------------------------------------------


def _replication_window(params: Mapping[str, str]) -> tuple[datetime, datetime]:
    from emulator.store import parse_datetime

    start_raw = params.get("start")
    end_raw = params.get("end")
    if not start_raw or not end_raw:
        raise ApiError(400, "MISSING_ARGUMENT", "Both start and end parameters are required")
    try:
        start = parse_datetime(start_raw)
        end = parse_datetime(end_raw)
    except ValueError:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "Invalid date format, expected ISO-8601") from None
    start = start.replace(second=0, microsecond=0)
    end = end.replace(second=0, microsecond=0)
    if start >= end:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    return start, end


def _replicable(org: Org, name: str) -> ObjectDef:
    obj = find_object(org.store.schema, name)
    if obj is None:
        raise not_found()
    if not obj.replicateable:
        raise ApiError(400, "INVALID_TYPE", f"The sObject type '{obj.name}' does not support replication.")
    return obj


def updated(org: Org, name: str, params: Mapping[str, str]) -> dict[str, Any]:
    """``GET sobjects/{name}/updated/?start=&end=`` (getUpdated()): the Ids changed in the window,
    for the plain route and for a composite subrequest alike. Raises :class:`ApiError`."""
    store = org.store
    obj = _replicable(org, name)
    start, end = _replication_window(params)
    now = store.clock.now().replace(second=0, microsecond=0)
    if start < now - UPDATED_WINDOW:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
    end = min(end, now)
    ids = store.updated_ids(obj.name, start, end) if start < end else []
    if len(ids) > MAX_REPLICATION_IDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. Narrow the date range.")
    return {"ids": ids, "latestDateCovered": fmt_datetime(end)}


def deleted(org: Org, name: str, params: Mapping[str, str]) -> dict[str, Any]:
    """``GET sobjects/{name}/deleted/?start=&end=``: the delete log of one object (SALESFORCE_API.md
    §2.5, getDeleted() rules), for the plain route and for a composite subrequest alike.

    ``earliestDateAvailable`` is the later of 15 days ago and the deletion time of the object's
    last physically deleted record (:meth:`OrgStore.delete_log_floor`); a window that starts
    before it is refused with INVALID_REPLICATION_DATE (the log no longer covers it). An ``end``
    in the future covers up to now: deletions up to the current instant are listed and
    ``latestDateCovered`` is the current minute, where the next window starts. Raises
    :class:`ApiError`.
    """
    store = org.store
    obj = _replicable(org, name)
    start, end = _replication_window(params)
    now = store.clock.now()
    minute = now.replace(second=0, microsecond=0)
    earliest = minute - DELETED_WINDOW
    floor = store.delete_log_floor(obj.name)
    if floor is not None and floor > earliest:
        earliest = floor
    if start < earliest:
        raise ApiError(
            400, "INVALID_REPLICATION_DATE",
            f"startDate must not be before earliestDateAvailable ({fmt_datetime(earliest)})",
        )  # fmt: skip
    until = min(end, now)
    recs = store.deleted_records(obj.name, start, until) if start < until else []
    if len(recs) > MAX_REPLICATION_IDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. Narrow the date range.")
    return {
        "deletedRecords": [{"id": r["id"], "deletedDate": fmt_datetime(r["deletedDate"])} for r in recs],
        "earliestDateAvailable": fmt_datetime(earliest),
        "latestDateCovered": fmt_datetime(min(end, max(start, minute))),
    }


# --- router -------------------------------------------------------------------------------------


def resource_map(org: Org, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}"
    names = [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "prechatForms",
        "contact-tracing",
        "jsonxform",
        "chatter",
        "tabs",
        "appMenu",
        "quickActions",
        "queryAll",
        "commerce",
        "wave",
        "iot",
        "analytics",
        "search",
        "smartdatadiscovery",
        "identity",
        "composite",
        "parameterizedSearch",
        "fingerprint",
        "theme",
        "nouns",
        "domino",
        "event",
        "serviceTemplates",
        "recent",
        "connect",
        "licensing",
        "limits",
        "process",
        "async-queries",
        "query",
        "match",
        "emailConnect",
        "compactLayouts",
        "knowledgeManagement",
        "sobjects",
        "actions",
        "support",
        "jobs",
        "ui-api",
        "consent",
        "scheduling",
        "localizedvalue",
        "dedupe",
    ]
    out = {n: f"{base}/{n}" for n in names}
    out["identity"] = org.identity_url()
    return out


def make_router(org: Org) -> APIRouter:
    router = APIRouter()
    store = org.store
    data = "/services/data/{ver}"

    def v(ver: str) -> str:
        return ver[1:]

    def obj_or_404(name: str) -> ObjectDef:
        obj = find_object(org.schema, name)
        if obj is None:
            raise not_found()
        return obj

    @router.get("/services/data")
    @router.get("/services/data/")
    def versions() -> Response:
        return _json(
            [{"label": release_label(x), "url": f"/services/data/v{x}", "version": x} for x in api_versions()]
        )

    @router.get(data)
    @router.get(data + "/")
    def resources(ver: str) -> Response:
        return _json(resource_map(org, v(ver)))

    @router.get(data + "/limits")
    @router.get(data + "/limits/")
    def limits(ver: str) -> Response:
        data_mb, file_mb = storage_mb(org)
        return _json(org.limits.snapshot(data_mb, file_mb))

    @router.get(data + "/sobjects")
    @router.get(data + "/sobjects/")
    def sobjects(ver: str) -> Response:
        return _json(describe_global(org.schema, v(ver)))

    @router.get(data + "/sobjects/{name}/describe")
    @router.get(data + "/sobjects/{name}/describe/")
    def describe(request: Request, ver: str, name: str) -> Response:
        obj = obj_or_404(name)
        since = request.headers.get("if-modified-since")
        if since:
            try:
                when = parsedate_to_datetime(since)
            except (TypeError, ValueError):
                when = None
            if when is not None and when.tzinfo is not None and when >= SCHEMA_LOADED_AT:
                return Response(status_code=304)
        return _json(describe_object(obj, v(ver), org.schema))

    @router.get(data + "/sobjects/{name}")
    @router.get(data + "/sobjects/{name}/")
    def basic_info(ver: str, name: str) -> Response:
        obj = obj_or_404(name)
        entry = describe_global({obj.name: obj}, v(ver))["sobjects"][0]
        return _json({"objectDescribe": entry, "recentItems": []})

    @router.post(data + "/sobjects/{name}")
    @router.post(data + "/sobjects/{name}/")
    async def create_record(request: Request, ver: str, name: str) -> Response:
        obj = obj_or_404(name)
        values = await _json_body(request)
        values.pop("attributes", None)
        new_id = await _in_thread(store.insert, obj.name, values)
        return _json({"id": new_id, "success": True, "errors": []}, status=201)

    @router.get(data + "/sobjects/{name}/updated")
    @router.get(data + "/sobjects/{name}/updated/")
    def updated_route(request: Request, ver: str, name: str) -> Response:
        return _json(updated(org, name, request.query_params))

    @router.get(data + "/sobjects/{name}/deleted")
    @router.get(data + "/sobjects/{name}/deleted/")
    def deleted_route(request: Request, ver: str, name: str) -> Response:
        return _json(deleted(org, name, request.query_params))

    @router.get(data + "/sobjects/{name}/{record_id}")
    @router.get(data + "/sobjects/{name}/{record_id}/")
    def get_record(request: Request, ver: str, name: str, record_id: str) -> Response:
        from emulator.files import file_visible
        from emulator.store import StoreError

        obj = obj_or_404(name)
        fields_raw = request.query_params.get("fields")
        fields = (
            [f.strip() for f in fields_raw.split(",") if f.strip()]
            if fields_raw
            else [f.name for f in obj.readable_fields]
        )
        for name in fields:  # field-level security: a hidden field does not exist for the user
            fd = obj.field(name)
            if fd is None or not fd.readable:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}")
        try:
            rec = store.get(obj.name, record_id, fields, api_version=v(ver))
        except StoreError as exc:
            raise _store_error(exc) from None
        if rec is None or not file_visible(store, obj.name, idmod.to18(record_id), org.user_id):
            raise not_found()
        if rec.get("IsDeleted") is True or _is_deleted(org, obj, record_id):
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        rid = idmod.to18(record_id)
        body: dict[str, Any] = {"attributes": {"type": obj.name, "url": record_url(v(ver), obj.name, rid)}}
        for key, value in rec.items():
            fd = obj.field(key)
            body[key] = json_value(fd.type if fd else None, value)
        return _json(body)

    @router.patch(data + "/sobjects/{name}/{record_id}")
    async def update_record(request: Request, ver: str, name: str, record_id: str) -> Response:
        obj = obj_or_404(name)
        values = await _json_body(request)
        values.pop("attributes", None)
        await _in_thread(store.update, obj.name, record_id, values)
        return Response(status_code=204)

    @router.delete(data + "/sobjects/{name}/{record_id}")
    async def delete_record(ver: str, name: str, record_id: str) -> Response:
        obj = obj_or_404(name)
        await _in_thread(store.delete, obj.name, record_id)
        return Response(status_code=204)

    @router.get(data + "/sobjects/{name}/{record_id}/{field_name}")
    async def blob(ver: str, name: str, record_id: str, field_name: str) -> Response:
        from emulator.files import file_visible
        from emulator.store import StoreError, blob_bytes

        obj = obj_or_404(name)
        if obj.blob_field is None or obj.blob_field.lower() != field_name.lower():
            raise not_found()
        try:
            # a dict lookup (the store caches blob metadata per object until the next write)
            meta = store.blob_meta(obj.name, record_id)
            if meta is None or meta.length is None:
                raise not_found()
            rid = idmod.to18(record_id)
            if not file_visible(store, obj.name, rid, org.user_id):
                raise not_found()  # a file the user cannot see (no Query All Files)
            if meta.explicit:
                explicit = await _in_thread(store.blob, obj.name, rid) if meta.length < (8 << 20) else None
            elif meta.length < (8 << 20):
                explicit = blob_bytes(store.blob_seed, rid, meta.length)
            else:
                explicit = None
        except StoreError as exc:
            raise _store_error(exc) from None
        ct = meta.content_type
        ctype = ("text/csv" if ct == "CSV" else ct) if ct else "application/octetstream"
        if explicit is not None:
            return Response(explicit, media_type=ctype)
        return StreamingResponse(store.blob_stream(obj.name, rid), media_type=ctype)

    def query_handler(include_deleted: bool):  # type: ignore[no-untyped-def]
        def handler(request: Request, ver: str) -> Response:
            soql = request.query_params.get("q")
            if soql is None or not soql.strip():
                raise ApiError(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
            if request.query_params.get("columns", "").lower() == "true":
                return _json(query_columns(org, soql, v(ver), include_deleted))
            batch = batch_size(request.headers.get("sforce-query-options"))
            body = run_query(org, soql, v(ver), include_deleted, batch)
            return _json(body)

        return handler

    def more_handler(request: Request, ver: str, locator: str) -> Response:
        return _json(query_more(org, locator, v(ver), request.headers.get("sforce-query-options")))

    for path, incl in (("query", False), ("queryAll", True)):
        router.add_api_route(f"{data}/{path}", query_handler(incl), methods=["GET"])
        router.add_api_route(f"{data}/{path}/", query_handler(incl), methods=["GET"])
        router.add_api_route(f"{data}/{path}/{{locator}}", more_handler, methods=["GET"])

    return router


def _is_deleted(org: Org, obj: ObjectDef, record_id: str) -> bool:
    if not obj.has_is_deleted:
        return False
    return not org.store.exists(obj.name, record_id, include_deleted=False)


def _store_error(exc: Exception) -> ApiError:
    code = getattr(exc, "error_code", "UNKNOWN_EXCEPTION")
    message = getattr(exc, "message", str(exc))
    fields = getattr(exc, "fields", None)
    status = 404 if code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400
    return ApiError(status, code, message, fields=fields or None)


async def _in_thread(fn: Any, *args: Any) -> Any:
    import anyio.to_thread

    from emulator.store import StoreError

    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except StoreError as exc:
        raise _store_error(exc) from None


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character in request body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from array value")
    return body


def _content_type(org: Org, obj: ObjectDef, record_id: str) -> str:
    for fname in ("ContentType", "LogFileContentType"):
        if obj.field(fname) is not None:
            rec = org.store.get(obj.name, record_id, [fname])
            value = rec.get(fname) if rec else None
            if value:
                return "text/csv" if value == "CSV" else str(value)
    return "application/octetstream"


def storage_mb(org: Org) -> tuple[int, int]:
    """(data MB, file MB) in use: 2 KB per record, and the sum of file body sizes."""
    from emulator.store import BLOB_LENGTH_FIELDS, q

    store = org.store
    records = sum(store.counts(include_deleted=True).values())
    file_bytes = 0
    with store.cursor() as cur:
        for obj in store.schema.values():
            if obj.blob_field is None or obj.blob_field not in BLOB_LENGTH_FIELDS:
                continue
            length = q(BLOB_LENGTH_FIELDS[obj.blob_field])
            row = cur.execute(f"SELECT coalesce(sum({length}), 0) FROM {store.table_name(obj)}").fetchone()
            file_bytes += int(row[0]) if row else 0
    return records * 2048 // (1 << 20), file_bytes // (1 << 20)
