"""Salesforce's delete log: ``GET /sobjects/{object}/deleted/?start=&end=`` (getDeleted()).

An incremental job asks it, once per replicateable object, for the records deleted since the
previous job's delete window ended, so that records purged from the recycle bin or hard-deleted
(which ``queryAll ... IsDeleted = true`` never returns) leave the backup at every job. The facts
it rests on (SALESFORCE_API.md §2.5, the getDeleted() rules of the SOAP API guide; decision 0010):

* ``start`` and ``end`` are UTC; Salesforce ignores their seconds (truncates to the minute);
  ``start`` must precede ``end``;
* the log goes back at most 15 days, and no further than ``earliestDateAvailable``, "the timestamp
  of the last physically deleted object" of the type: emptying the recycle bin (or its auto purge)
  and hard deletes move it forward. A window starting before it is refused with
  ``INVALID_REPLICATION_DATE`` (or answered with an ``earliestDateAvailable`` after the start):
  the log no longer covers the window and the object must be re-synchronised (swept);
* more than 600,000 Ids: ``EXCEEDED_ID_LIMIT``;
* ``latestDateCovered`` (at most ``end``) is where the next window must start.

A job asks for ``[where the previous window ended, the first whole minute after the job's start
by the org's clock)`` (:func:`window`): exactly its own window, read to the minute as Salesforce
reads it; the next job starts where the answer says this one stopped, so the windows chain
without a hole (decision 0031).

The window rules are pure functions (hypothesis-tested); :func:`get_deleted` is the one call,
and :func:`get_deleted_many` asks the log of up to 25 objects in one composite request (one API
call; decision 0041), each answer read and refused exactly as :func:`get_deleted` reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

from engine.errors import (
    ReplicationIdLimit,
    ReplicationNotSupported,
    ReplicationWindowNotCovered,
    SalesforceQueryError,
    SalesforceRequestFailed,
    SfvaultError,
    TransientError,
)
from engine.extract.client import SalesforceClient
from engine.extract.composite import get_many

RETENTION = timedelta(days=15)
"""How far back the delete log answers at most (Salesforce: 15 days)."""
MAX_IDS = 600_000
"""More deleted Ids than this in one window: EXCEEDED_ID_LIMIT."""
MIN_SPAN = timedelta(minutes=2)
"""The shortest window asked: Salesforce wants ``start`` to precede ``end`` by more than a minute
(getDeleted() rules, API 50+), both read to the minute. A shorter one starts earlier: an overlap
only lists deletions again."""
DATE_RESOLUTION = timedelta(seconds=1)
"""The org's time is read from the ``Date`` header of its answers, to the second."""


def minute(ts: datetime) -> datetime:
    """``ts`` in UTC with its seconds dropped, as Salesforce reads a replication date."""
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(second=0, microsecond=0)


def ceil_minute(ts: datetime) -> datetime:
    """The first whole minute at or after ``ts`` (UTC)."""
    down = minute(ts)
    return down if down == ts.astimezone(UTC) else down + timedelta(minutes=1)


def window_end(org_now: datetime) -> datetime:
    """The ``end`` a job asks the delete log for: the job's own window end, the first whole minute
    after the job started by the org's clock (``org_now``, read to the second). Salesforce reads
    ``end`` to the minute, so this is the earliest end that lists every deletion before the job
    started; what is deleted from then on belongs to the next job's window, which starts at the
    answer's ``latestDateCovered`` (at most this end). Pure."""
    return ceil_minute(org_now + DATE_RESOLUTION)


def window(
    start: datetime | None, org_now: datetime, *, retention: timedelta = RETENTION
) -> tuple[datetime, datetime] | None:
    """The delete window ``(start, end)`` a job asks for, or None when none can be served.

    ``start`` is where the previous job's window ended (its ``latestDateCovered``, or just before
    the start of the job that last swept or fully read the object); ``end`` is
    :func:`window_end` of ``org_now``, the job's start by the org's clock. A window shorter than
    :data:`MIN_SPAN` (or a start after the end: a start recorded by a clock ahead of the org's)
    starts :data:`MIN_SPAN` before the end instead: earlier, never later, so nothing between the
    previous window and this one is skipped. None: no recorded start, or a start older than
    ``retention`` (the log no longer holds it). Pure.
    """
    if start is None:
        return None
    lo = minute(start)
    hi = window_end(org_now)
    if lo < minute(org_now) - retention:
        return None
    return min(lo, hi - MIN_SPAN), hi


def covers(start: datetime, earliest_available: datetime | None) -> bool:
    """Whether a delete log whose ``earliestDateAvailable`` is ``earliest_available`` answers for
    everything deleted from ``start`` on. Pure."""
    return earliest_available is None or earliest_available <= start


def next_start(start: datetime, end: datetime, latest_covered: datetime | None) -> datetime:
    """Where the next window starts: ``latestDateCovered`` (clamped into ``[start, end]``; missing
    means the whole window was covered). Never after ``end``, so no deletion is skipped. Pure."""
    if latest_covered is None:
        return end
    return max(start, min(end, latest_covered))


def fmt(ts: datetime) -> str:
    """A replication date parameter: ISO-8601 UTC with an offset (``2024-03-01T10:11:00+00:00``)."""
    return minute(ts).isoformat()


def parse(text: str) -> datetime:
    """A Salesforce JSON datetime (``2024-03-01T10:11:12.000+0000``, or ``Z``) as aware UTC."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    elif len(t) >= 5 and t[-5] in "+-" and t[-3] != ":":
        t = t[:-2] + ":" + t[-2:]
    return datetime.fromisoformat(t).astimezone(UTC)


@dataclass(frozen=True)
class DeletedRecords:
    """One answer of the delete log for ``[start, end)``.

    Attributes:
        records: ``(Id, deletedDate)`` pairs, in the order Salesforce listed them.
        earliest_available: ``earliestDateAvailable`` (None when Salesforce left it out).
        latest_covered: ``latestDateCovered`` (None when left out: the whole window).
    """

    sobject: str
    start: datetime
    end: datetime
    records: tuple[tuple[str, datetime], ...]
    earliest_available: datetime | None
    latest_covered: datetime | None

    @property
    def through(self) -> datetime:
        """Where the next job's window starts (:func:`next_start`)."""
        return next_start(self.start, self.end, self.latest_covered)


def _refusal(err: SfvaultError, sobject: str, start: datetime, end: datetime) -> SfvaultError:
    """The replication error a refused call means (the error itself when it is no refusal)."""
    if not isinstance(err, SalesforceRequestFailed | SalesforceQueryError):
        return err
    code = err.details.get("sf_code")
    what = str(err.details.get("what") or code or "")
    where: dict[str, Any] = {"object": sobject, "start": fmt(start), "end": fmt(end)}
    if code == "INVALID_REPLICATION_DATE":
        return ReplicationWindowNotCovered(what=what, **where)
    if code == "EXCEEDED_ID_LIMIT":
        return ReplicationIdLimit(**where)
    if code in ("INVALID_TYPE", "NOT_FOUND", "REPLICATION_NOT_ENABLED") or err.details.get("status") == 404:
        return ReplicationNotSupported(object=sobject, what=what)
    return err


def _answer(body: dict[str, Any], sobject: str, lo: datetime, hi: datetime) -> DeletedRecords | SfvaultError:
    """The log's answer for ``[lo, hi)``, or :class:`ReplicationWindowNotCovered` when its
    ``earliestDateAvailable`` is after the start."""
    earliest = body.get("earliestDateAvailable")
    latest = body.get("latestDateCovered")
    out = DeletedRecords(
        sobject=sobject,
        start=lo,
        end=hi,
        records=tuple((str(r["id"]), parse(str(r["deletedDate"]))) for r in body.get("deletedRecords") or ()),
        earliest_available=parse(earliest) if earliest else None,
        latest_covered=parse(latest) if latest else None,
    )
    if not covers(lo, out.earliest_available):
        return ReplicationWindowNotCovered(
            object=sobject, start=fmt(lo), end=fmt(hi),
            what=f"earliestDateAvailable {earliest} is after the start",
        )  # fmt: skip
    return out


def _params(lo: datetime, hi: datetime) -> dict[str, str]:
    return {"start": fmt(lo), "end": fmt(hi)}


def get_deleted(client: SalesforceClient, sobject: str, start: datetime, end: datetime) -> DeletedRecords:
    """The records of ``sobject`` deleted in ``[start, end)`` (both truncated to the minute).

    Raises:
        ReplicationWindowNotCovered: INVALID_REPLICATION_DATE, or the answer's
            ``earliestDateAvailable`` is after ``start`` (the log no longer covers the window).
        ReplicationIdLimit: EXCEEDED_ID_LIMIT.
        ReplicationNotSupported: the object does not support replication.
    """
    lo, hi = minute(start), minute(end)
    try:
        body = client.get_json(f"sobjects/{sobject}/deleted/", params=_params(lo, hi), sobject=sobject)
    except (SalesforceRequestFailed, SalesforceQueryError) as err:
        raise _refusal(err, sobject, lo, hi) from None
    got = _answer(body, sobject, lo, hi)
    if isinstance(got, SfvaultError):
        raise got
    return got


def get_deleted_many(
    client: SalesforceClient,
    asks: Sequence[tuple[str, datetime, datetime]],
    *,
    alone: Callable[[str, datetime, datetime], DeletedRecords] | None = None,
) -> list[DeletedRecords | SfvaultError]:
    """:func:`get_deleted` of each ``(sobject, start, end)``, up to
    :data:`engine.extract.composite.COMPOSITE_MAX` of them in one ``POST /composite`` (one API call;
    Salesforce's composite serves every sObject resource but Blob Get, and runs the subrequests
    one after another).

    Each ask maps to what :func:`get_deleted` would return or raise for it: a subrequest's
    refusal is classified and mapped as the plain call's (:func:`_refusal`), and an answer whose
    ``earliestDateAvailable`` is after the start is :class:`ReplicationWindowNotCovered`. A
    subrequest that answered a transient error is asked again alone, with the client's retries,
    through ``alone`` (default :func:`get_deleted` on ``client``; a caller passes its own to
    charge that call elsewhere).

    Raises:
        ValueError: more than :data:`~engine.extract.composite.COMPOSITE_MAX` asks.
        SfvaultError: the composite request itself failed (after the client's retries).
    """
    if not asks:
        return []
    again = alone if alone is not None else partial(get_deleted, client)
    windows = [(name, minute(start), minute(end)) for name, start, end in asks]
    paths = [
        (f"sobjects/{quote(name)}/deleted/?{urlencode(_params(lo, hi))}", name) for name, lo, hi in windows
    ]
    answers = get_many(client, paths, sobject=windows[0][0])
    out: list[DeletedRecords | SfvaultError] = []
    for got, (name, lo, hi) in zip(answers, windows, strict=True):
        if isinstance(got, TransientError):
            try:
                out.append(again(name, lo, hi))
            except SfvaultError as err:
                out.append(err)
        elif isinstance(got, SfvaultError):
            out.append(_refusal(got, name, lo, hi))
        else:
            out.append(_answer(got, name, lo, hi))
    return out
