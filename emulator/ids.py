"""Salesforce record Ids.

A 15-character Id is case-sensitive base 62: a 3-character key prefix (the object), two
characters of pod id, one reserved character and a 9-digit sequence number. The 18-character
form appends a 3-character checksum that encodes which of the first 15 characters are upper
case, so that the Id stays unique when compared case-insensitively (SALESFORCE_API.md §5).

Ids made here use a fixed pod (``POD``) and reserved character, and encode the counter with a
fixed width, so that for one object a larger counter always sorts later in plain ASCII order,
which is how Salesforce compares Ids (``0-9`` < ``A-Z`` < ``a-z``).
"""

from __future__ import annotations

import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
POD = "gD"
RESERVED = "0"
COUNTER_DIGITS = 9
MAX_COUNTER = 62**COUNTER_DIGITS - 1

_ID15 = re.compile(r"^[0-9A-Za-z]{15}$")
_ID18 = re.compile(r"^[0-9A-Za-z]{15}[A-Z0-5]{3}$")

KEY_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Note": "002",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Organization": "00D",
    "UserRole": "00E",
    "Group": "00G",
    "Lead": "00Q",
    "Attachment": "00P",
    "Task": "00T",
    "Event": "00U",
    "Profile": "00e",
    "Document": "015",
    "ContentVersion": "068",
    "ContentDocument": "069",
    "ContentDocumentLink": "06A",
    "StaticResource": "081",
    "EventLogFile": "0AT",
    "FeedItem": "0D5",
    "AccountFeed": "0D5",
    "PermissionSet": "0PS",
    "PermissionSetAssignment": "0Pa",
    "ObjectPermissions": "110",
    "FieldPermissions": "01k",
    "AccountHistory": "017",
    "AccountShare": "00r",
    "UserLicense": "100",
    "Case": "500",
    "BulkJob": "750",
    "QueryLocator": "01g",
    # custom objects get a00, a01, ... in schema order
    "Invoice__c": "a00",
    "Shipment__c": "a01",
}


def custom_key_prefix(index: int) -> str:
    """Key prefix of the ``index``-th custom object: ``a00``, ``a01``, ... ``a0z``, ``a10``..."""
    if not 0 <= index < 62 * 62:
        raise ValueError(f"custom object index out of range: {index}")
    return "a" + BASE62[index // 62] + BASE62[index % 62]


def checksum_suffix(id15: str) -> str:
    """The 3-character case checksum of a 15-character Id."""
    if len(id15) != 15:
        raise ValueError(f"not a 15-character id: {id15!r}")
    suffix = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix.append(CHECKSUM_ALPHABET[bits])
    return "".join(suffix)


def is_valid_id(s: str) -> bool:
    """True for a well-formed 15-character Id, or an 18-character Id whose checksum matches."""
    if not isinstance(s, str):
        return False
    if len(s) == 15:
        return _ID15.match(s) is not None
    if len(s) == 18 and _ID18.match(s) is not None:
        return checksum_suffix(s[:15]) == s[15:]
    return False


def to18(id_: str) -> str:
    """The 18-character form of a 15- or 18-character Id.

    An 18-character Id whose case was lost (e.g. lower-cased) is *not* repaired: its checksum no
    longer matches and it is rejected, like any other malformed Id.

    Raises:
        ValueError: ``id_`` is not a well-formed Id.
    """
    if not is_valid_id(id_):
        raise ValueError(f"invalid ID field: {id_}")
    if len(id_) == 18:
        return id_
    return id_ + checksum_suffix(id_)


def to15(id_: str) -> str:
    """The case-sensitive 15-character form of a 15- or 18-character Id."""
    return to18(id_)[:15]


def encode_counter(n: int) -> str:
    """``n`` as a fixed-width 9-digit base-62 string."""
    if not 0 <= n <= MAX_COUNTER:
        raise ValueError(f"id counter out of range: {n}")
    digits = []
    for _ in range(COUNTER_DIGITS):
        n, r = divmod(n, 62)
        digits.append(BASE62[r])
    return "".join(reversed(digits))


def decode_counter(id_: str) -> int:
    """The sequence number of an Id made by :func:`make_id` (last 9 characters of the 15)."""
    n = 0
    for ch in to15(id_)[6:]:
        n = n * 62 + BASE62.index(ch)
    return n


def make_id(key_prefix: str, n: int) -> str:
    """The 18-character Id number ``n`` of the object with ``key_prefix``.

    Deterministic; for one key prefix a larger ``n`` sorts later in ASCII order.
    """
    if len(key_prefix) != 3 or any(c not in BASE62 for c in key_prefix):
        raise ValueError(f"invalid key prefix: {key_prefix!r}")
    id15 = key_prefix + POD + RESERVED + encode_counter(n)
    return id15 + checksum_suffix(id15)


def id_sql_macros() -> list[str]:
    """DuckDB macros that compute :func:`make_id` vectorised: ``sf_id(key_prefix, n)``.

    ``sf_id`` returns exactly ``make_id(key_prefix, n)`` for every BIGINT ``n`` in range.
    """
    pows = [62**k for k in range(COUNTER_DIGITS)]
    alpha = BASE62
    digit = [f"((n // {pows[k]}) % 62)" for k in range(COUNTER_DIGITS)]  # k = 0 least significant
    chars = " || ".join(f"substr('{alpha}', CAST({digit[k]} AS INTEGER) + 1, 1)" for k in reversed(range(9)))

    def up(k: int) -> str:
        return f"(CASE WHEN {digit[k]} BETWEEN 10 AND 35 THEN 1 ELSE 0 END)"

    # chunk 2 = reserved + digits 8..5 (bit positions 0..4); reserved is '0' (never upper case)
    bits2 = " + ".join(f"{up(k)} * {1 << (9 - k)}" for k in (8, 7, 6, 5))
    # chunk 3 = digits 4..0 at bit positions 0..4
    bits3 = " + ".join(f"{up(k)} * {1 << (4 - k)}" for k in (4, 3, 2, 1, 0))
    ca = CHECKSUM_ALPHABET
    chunk1 = (
        "substr('" + ca + "', (CASE WHEN ascii(substr(kp, 1, 1)) BETWEEN 65 AND 90 THEN 1 ELSE 0 END"
        " + CASE WHEN ascii(substr(kp, 2, 1)) BETWEEN 65 AND 90 THEN 2 ELSE 0 END"
        " + CASE WHEN ascii(substr(kp, 3, 1)) BETWEEN 65 AND 90 THEN 4 ELSE 0 END"
        f" + {_pod_bits()}) + 1, 1)"
    )
    return [
        "CREATE OR REPLACE MACRO sf_id(kp, n) AS "
        f"kp || '{POD}{RESERVED}' || {chars} || {chunk1}"
        f" || substr('{ca}', CAST({bits2} AS INTEGER) + 1, 1)"
        f" || substr('{ca}', CAST({bits3} AS INTEGER) + 1, 1)"
    ]


def _pod_bits() -> int:
    bits = 0
    for i, ch in enumerate(POD):
        if "A" <= ch <= "Z":
            bits |= 1 << (3 + i)
    return bits
