"""Which API reads an object, and why (pure: the ``auto`` extraction strategy, decision 0028).

Rules, in order (the first that applies decides; the reason is recorded in the object's
:class:`engine.model.ExtractionChoice`, shown by ``sfvault job show``):

1. ``bulk_unsupported``: Bulk API cannot query the object (scope's list, or Bulk refused it at run
   time): REST ``queryAll`` paging, whatever the strategy.
2. ``small``: the object (a full) or the window (an incremental) holds at most
   :attr:`JobOptions.rest_limit` rows: one or a few REST pages cost less than any Bulk job's
   create, queue, poll and page (decision 0019).
3. ``configured``: ``extraction_strategy`` is ``bulk2`` or ``bulk1``: that API, over the job's
   Id-range partitions.
4. ``auto`` only:

   * ``incremental_window``: an incremental (or an Id sweep) reads a slice of the object. PK
     chunking splits the *whole table* by Id whatever the query's filter (SALESFORCE_API.md §4b,
     decision 0018), so a slice would pay for every empty chunk: Bulk API 2.0.
   * ``pk_chunking``: a full of an object of at least :attr:`JobOptions.pk_chunking_min_rows`
     rows: one Bulk API 1.0 job over the whole object, PK-chunked by Salesforce (no Id bounds, no
     ``COUNT()`` per piece, one poll of the batch list serves every chunk; two calls per chunk).
     The default threshold is high (decision 0040): one task reads such a job, so Id ranges
     read in parallel were faster at every size measured.
   * ``id_ranges``: otherwise Bulk API 2.0 query jobs over Id-range partitions.
"""

from __future__ import annotations

from typing import Literal

from engine.model import ExtractionChoice

Strategy = Literal["bulk2", "bulk1", "auto"]


def choose_extraction(
    *,
    strategy: Strategy,
    bulk_capable: bool,
    full: bool,
    rows: int | None,
    rest_limit: int,
    pk_chunking_min_rows: int,
) -> ExtractionChoice:
    """The path of one object of a job; see the module's rules.

    Args:
        strategy: the org's ``extraction_strategy``.
        bulk_capable: Bulk API can query the object (its plan's path is not ``rest``).
        full: the object is read in full (a full job, or a full inside an incremental), not a
            window or a sweep.
        rows: the rows the job reads (``COUNT()`` of the object or the window); None = unknown.
        rest_limit: :attr:`engine.jobs.planning.JobOptions.rest_limit` (0 = never REST for size).
        pk_chunking_min_rows: the smallest object ``auto`` reads with PK chunking.
    """
    if not bulk_capable:
        return ExtractionChoice("rest", "bulk_unsupported", rows)
    if rows is not None and rest_limit > 0 and rows <= rest_limit:
        return ExtractionChoice("rest", "small", rows)
    if strategy != "auto":
        return ExtractionChoice(strategy, "configured", rows)
    if not full:
        return ExtractionChoice("bulk2", "incremental_window", rows)
    if rows is not None and rows >= pk_chunking_min_rows:
        return ExtractionChoice("bulk1", "pk_chunking", rows)
    return ExtractionChoice("bulk2", "id_ranges", rows)
