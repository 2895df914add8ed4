"""engine.diff: recovery points, compare and exports over DuckDB, out of core (issue 6).

* :mod:`engine.diff.recovery`: an object's state at any job of a cycle (scratch files + DuckDB);
* :mod:`engine.diff.compare`: compare two jobs, and the Data view's per-object statistics;
* :mod:`engine.diff.selection`: the rows of an export scope (``changed`` / ``cycle``);
* :mod:`engine.diff.export_csv`, :mod:`engine.diff.export_mysql`: per-object file writers;
* :mod:`engine.diff.export`: record and file exports into :mod:`engine.diff.archive` (AES-256 ZIP).

A stage: it imports no other stage; the repository is passed in (``recovery.ChunkSource``) and the
catalog rules live in :mod:`engine.jobs.exports`.
"""
