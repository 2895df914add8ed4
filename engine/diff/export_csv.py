"""CSV exports: RFC 4180, UTF-8, a header row, one file per object, written by DuckDB ``COPY``.

Format of each file (``<Object>.csv``):

* comma separated, CRLF line ends, fields quoted with ``"`` when they hold a comma, a quote or a
  line break, embedded quotes doubled (RFC 4180); UTF-8 without BOM;
* NULL is an empty field, the empty string is ``""`` (a quoted empty field), so the two stay
  distinct for readers that honour quoting (pyarrow: ``strings_can_be_null=True``,
  ``quoted_strings_can_be_null=False``);
* datetimes in UTC as ``2024-01-02T03:04:05.000Z`` (the Salesforce form), dates ``YYYY-MM-DD``,
  booleans ``true``/``false``, decimals exactly as stored, multipicklists as Salesforce sends
  them (values separated by ``;``).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from engine.diff.recovery import RecoveryPoints, lit, q, run
from engine.diff.selection import Selection


def _column_sql(f: pa.Field) -> str:
    if pa.types.is_timestamp(f.type):
        return f"strftime(CAST({q(f.name)} AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%gZ') AS {q(f.name)}"
    if pa.types.is_boolean(f.type):
        return f"CASE WHEN {q(f.name)} THEN 'true' WHEN NOT {q(f.name)} THEN 'false' END AS {q(f.name)}"
    return q(f.name)


def write_csv(rp: RecoveryPoints, sel: Selection, dest: Path | str) -> int:
    """Write the selection to ``dest``; returns the number of bytes written."""
    cols = ", ".join(_column_sql(f) for f in sel.schema)
    options = "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"', NEW_LINE '\\r\\n')"
    if sel.file is None:
        run(rp.con, f"COPY (SELECT {cols} FROM {sel.sql} ORDER BY Id) TO {lit(str(dest))} {options}")
        return Path(dest).stat().st_size
    # a whole recovery point is already sorted by Id: keep the file's order instead of sorting again
    run(rp.con, "SET preserve_insertion_order = true")
    try:
        run(rp.con, f"COPY (SELECT {cols} FROM {sel.sql}) TO {lit(str(dest))} {options}")
    finally:
        run(rp.con, "SET preserve_insertion_order = false")
    return Path(dest).stat().st_size


def read_csv(path: Path | str, schema: pa.Schema) -> pa.Table:
    """Read an export back with pyarrow, typed by the backup's schema (tests, and users' recipe)."""
    import pyarrow.csv as pacsv

    types = {f.name: f.type for f in schema}
    return pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["true"],
            false_values=["false"],
        ),
    )
