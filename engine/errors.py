"""One exception tree for sfvault.

Every error has a stable ``code`` (documented in ``docs/TROUBLESHOOTING.md``, never reused),
a CLI ``exit_code`` and an HTTP ``http_status``. The message is built from the class'
``template`` and the keyword arguments, which must be plain, picklable data (Dask moves
exceptions between processes). Errors are classified where they enter the system:
``TransientError`` is retried by the tenacity wrappers, ``PermanentError`` is not.

Never put a secret into the arguments of an error: they end up in logs and reports.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SfvaultError(Exception):
    """Root of every sfvault error."""

    code: ClassVar[str] = "SFV-000"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    template: ClassVar[str] = "sfvault error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.details = details
        if message is None:
            try:
                message = self.template.format(**details)
            except (KeyError, IndexError):
                message = self.template
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.details))

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error shape of the CLI and the API."""
        return {"code": self.code, "message": self.message, "details": self.details}


def _rebuild(cls: type[SfvaultError], message: str, details: dict[str, Any]) -> SfvaultError:
    err = cls.__new__(cls)
    SfvaultError.__init__(err, message, **details)
    return err


class TransientError(SfvaultError):
    """May succeed when retried (timeouts, 5xx, throttling, connection resets)."""

    code = "SFV-001"
    exit_code = 75
    http_status = 503
    template = "transient failure: {what}"


class PermanentError(SfvaultError):
    """Will fail the same way when retried."""

    code = "SFV-002"
    exit_code = 1
    http_status = 500
    template = "permanent failure: {what}"


# --- configuration and usage ---------------------------------------------------------------


class ConfigError(PermanentError):
    code = "SFV-100"
    exit_code = 2
    http_status = 400
    template = "configuration error: {what}"


class NotFound(PermanentError):
    code = "SFV-101"
    exit_code = 4
    http_status = 404
    template = "{kind} not found: {name}"


# --- storage backends ----------------------------------------------------------------------


class BackendError(SfvaultError):
    code = "SFV-200"
    exit_code = 74
    template = "storage backend error on {name}: {what}"


class BackendTransient(TransientError, BackendError):
    code = "SFV-201"
    template = "transient storage error on {name}: {what}"


class ObjectNotFound(PermanentError, BackendError):
    code = "SFV-202"
    exit_code = 74
    http_status = 404
    template = "object not found in the repository: {name}"


class ObjectExists(PermanentError, BackendError):
    code = "SFV-203"
    exit_code = 74
    http_status = 409
    template = "object already exists and is write-once: {name}"


class StorageFull(PermanentError, BackendError):
    code = "SFV-204"
    exit_code = 74
    http_status = 507
    template = "no space left while writing {name}"


class BackendAuthError(PermanentError, BackendError):
    code = "SFV-205"
    exit_code = 77
    http_status = 502
    template = "storage refused the credentials for {name}"


# --- keys and integrity --------------------------------------------------------------------


class KeyError_(PermanentError):
    code = "SFV-300"
    exit_code = 77
    template = "key error: {what}"


class KeyFileMissing(KeyError_):
    code = "SFV-301"
    template = "key file not found: {path}"


class WrongKey(KeyError_):
    code = "SFV-302"
    template = "the key does not open repository {repo}: wrong key file or key vault key"


class IntegrityError(PermanentError):
    code = "SFV-310"
    exit_code = 90
    template = "integrity error in {name}"


class ObjectCorrupt(IntegrityError):
    code = "SFV-311"
    template = "{name} failed authentication (altered or damaged)"


class ObjectTruncated(IntegrityError):
    code = "SFV-312"
    template = "{name} is truncated: {size} bytes, expected {expected}"


class ChunkIdMismatch(IntegrityError):
    code = "SFV-313"
    template = "{name}: content does not hash to its id"


class MissingObject(IntegrityError):
    code = "SFV-314"
    template = "{name} is referenced by {by} but missing from the repository"


class FormatVersionError(PermanentError):
    code = "SFV-320"
    exit_code = 91
    template = "{name} has format version {version}, this sfvault reads {supported}"


class RepositoryLocked(PermanentError):
    code = "SFV-330"
    exit_code = 73
    http_status = 409
    template = "repository lock {name} is held by {holder} since {since}"


class RepositoryNotInitialized(PermanentError):
    code = "SFV-331"
    exit_code = 2
    http_status = 400
    template = "no sfvault repository at {url}; run `sfvault init` first"


class RepositoryExists(PermanentError):
    code = "SFV-332"
    exit_code = 2
    http_status = 409
    template = "a repository already exists at {url}"


# --- Salesforce ----------------------------------------------------------------------------


class SalesforceError(SfvaultError):
    code = "SFV-400"
    exit_code = 69
    http_status = 502
    template = "Salesforce error {sf_code}: {what}"


class SalesforceTransient(TransientError, SalesforceError):
    code = "SFV-401"
    template = "Salesforce is unavailable ({status}): {what}"


class SalesforceAuthError(PermanentError, SalesforceError):
    code = "SFV-402"
    exit_code = 77
    template = "Salesforce refused the credentials: {what}"


class SalesforceApiLimit(PermanentError, SalesforceError):
    code = "SFV-403"
    exit_code = 75
    http_status = 429
    template = "Salesforce API allowance would fall below the reserve: {remaining} of {limit} left"


class SalesforceQueryError(PermanentError, SalesforceError):
    code = "SFV-404"
    template = "query on {object} failed with {sf_code}: {what}"


class SalesforceQueryTimeout(SalesforceError, TransientError):
    code = "SFV-405"
    template = "query on {object} timed out on the Salesforce side"


class SalesforceRequestFailed(PermanentError, SalesforceError):
    code = "SFV-406"
    template = "Salesforce answered {status} {sf_code}: {what}"


def all_error_classes() -> list[type[SfvaultError]]:
    """Every class of the tree, for documentation and the pickling test."""
    seen: list[type[SfvaultError]] = []
    stack: list[type[SfvaultError]] = [SfvaultError]
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen
