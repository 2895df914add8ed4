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


class UnexpectedError(SfvaultError):
    """What the CLI's error boundary reports for an exception outside this tree (a defect):
    one coded line instead of a traceback; ``--debug`` or ``SFVAULT_DEBUG=1`` shows the traceback."""

    code = "SFV-003"
    exit_code = 70
    template = "unexpected {kind}: {what} (run again with --debug for the traceback, and report it)"


# --- configuration and usage ---------------------------------------------------------------


class ConfigError(PermanentError):
    code = "SFV-100"
    exit_code = 2
    http_status = 400
    template = "configuration error: {what}"


class PathUnusable(ConfigError):
    """A file or folder the command must read or write cannot be used (missing, a directory where a
    file is needed, no permission, a read-only or special file system). Checked before work starts
    where the command can; otherwise the error boundary maps the ``OSError`` to this code."""

    code = "SFV-102"
    exit_code = 74
    template = "cannot use {path}: {what}"


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


class InvalidObjectName(PermanentError, BackendError):
    code = "SFV-206"
    exit_code = 2
    http_status = 400
    template = "invalid repository object name {name}: {what}"


class UnsupportedRepositoryUrl(ConfigError):
    code = "SFV-207"
    template = "unsupported repository URL {url}: {what}"


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


class KeyFileInsecure(KeyError_):
    code = "SFV-303"
    template = "key file {path} is readable by other users; run `chmod 600 {path}`"


class KeyProviderError(KeyError_):
    code = "SFV-304"
    template = "key provider {kind} failed: {what}"


class KeyFileInvalid(KeyError_):
    code = "SFV-305"
    template = "key file {path} is not an sfvault key file: {what}"


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


class SealedChecksumMismatch(IntegrityError):
    code = "SFV-315"
    template = "{name}: SHA-256 of the stored bytes differs from the one recorded in {by} (bit rot)"


class ManifestInvalid(IntegrityError):
    code = "SFV-316"
    template = "{name} decrypts but is not a valid snapshot manifest: {what}"


class VerifyFailed(IntegrityError):
    code = "SFV-317"
    template = "verify found problems in {url}: {what}"


class FormatVersionError(PermanentError):
    code = "SFV-320"
    exit_code = 91
    template = "{name} has format version {version}, this sfvault reads {supported}"


class RepositoryLocked(PermanentError):
    code = "SFV-330"
    exit_code = 73
    http_status = 409
    template = "the repository lock of {name} is held by {holder} since {since}"


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


class LockLost(PermanentError):
    code = "SFV-333"
    exit_code = 73
    http_status = 409
    template = "repository lock {name} is no longer held by this writer: {what}"


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
    http_status = 502  # Salesforce's refusal, not ours (PermanentError's 500 would win by MRO)
    template = (
        "Salesforce refused the credentials: {what} (when they changed, store the new ones of a "
        "connected org with `sfvault org update ORG`)"
    )


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


class SalesforceRequestLimitExceeded(SalesforceApiLimit):
    """The org refused a call with REQUEST_LIMIT_EXCEEDED (daily or concurrent allowance used up)."""

    code = "SFV-407"
    template = "Salesforce refused the call, the org's API allowance is used up: {what}"


class SalesforceBulkUnsupported(SalesforceQueryError):
    """Bulk API 2.0 cannot query this object (or this field list); use REST queryAll paging."""

    code = "SFV-408"
    template = "{object} cannot be queried with Bulk API 2.0: {what}"


class SalesforceJobFailed(SalesforceQueryError):
    """A Bulk API 2.0 query job ended Failed or Aborted for a reason other than a timeout."""

    code = "SFV-409"
    template = "Bulk job on {object} ended {sf_code}: {what}"


class SalesforceNotFound(SalesforceRequestFailed):
    """404 NOT_FOUND: unknown object, record, job, path or API version."""

    code = "SFV-410"
    http_status = 404
    template = "Salesforce resource not found: {what}"


class SalesforceDataError(PermanentError, SalesforceError):
    """A result page does not match the describe (a value of the wrong type, a missing column)."""

    code = "SFV-411"
    template = "{object}: result data does not match the describe: {what}"


class ReplicationError(PermanentError, SalesforceError):
    """The replication API (``/sobjects/{object}/deleted``) cannot serve a window: the job sweeps
    the object's Ids instead (never a failure of the object)."""

    code = "SFV-420"
    template = "{object}: the delete log cannot serve {start} to {end}: {what}"


class ReplicationWindowNotCovered(ReplicationError):
    """INVALID_REPLICATION_DATE, or an ``earliestDateAvailable`` later than the window's start: the
    delete log no longer reaches back to where the last job stopped (records were physically
    deleted, the recycle bin was emptied, or the window is older than 15 days)."""

    code = "SFV-421"
    template = "{object}: the delete log does not cover {start} to {end}: {what}"


class ReplicationIdLimit(ReplicationError):
    """EXCEEDED_ID_LIMIT: more than 600,000 Ids were deleted in the window."""

    code = "SFV-422"
    template = "{object}: more than 600,000 Ids deleted between {start} and {end}"


class ReplicationNotSupported(ReplicationError):
    """The object is not replicateable (describe ``replicateable: false``), or Salesforce refused
    the replication resource for it."""

    code = "SFV-423"
    template = "{object} does not support the replication API: {what}"


# --- change data capture (Pub/Sub API) -----------------------------------------------------


class CdcError(SalesforceError):
    """Continuous data protection: the Pub/Sub API stream of change events."""

    code = "SFV-450"
    template = "change data capture: {what}"


class CdcStreamTransient(TransientError, CdcError):
    """The stream failed in a way a resubscription may cure (UNAVAILABLE, INTERNAL, a dropped
    stream, DEADLINE_EXCEEDED): the subscriber reconnects with backoff from its last committed
    replay id."""

    code = "SFV-451"
    template = "the Pub/Sub stream of {topic} failed ({status}): {what}"


class ReplayIdExpired(PermanentError, CdcError):
    """Salesforce no longer holds the replay id the subscriber must resume from (INVALID_ARGUMENT,
    ``...replayid.corrupted``): the outage lasted longer than the retention (72 hours), or the
    org's event bus was reset."""

    code = "SFV-452"
    template = (
        "{org} {topic}: the last committed replay id {replay_id} is no longer retained by Salesforce "
        "(changes since {since} are not in the stream); {action}"
    )


class CdcAllocationExhausted(PermanentError, CdcError):
    """RESOURCE_EXHAUSTED: the org's daily event delivery allocation is spent."""

    code = "SFV-453"
    exit_code = 75
    template = (
        "{org} {topic}: the org's daily change event delivery allocation is spent; the subscriber "
        "stops (scheduled backups go on): {what}"
    )


class CdcTopicNotFound(PermanentError, CdcError):
    """NOT_FOUND: the object is not selected for Change Data Capture in the org (Setup > Change
    Data Capture), or the topic name is wrong."""

    code = "SFV-454"
    template = "{org}: no change event topic {topic} (is Change Data Capture enabled for the object?): {what}"


class CdcAuthError(PermanentError, CdcError):
    """UNAUTHENTICATED twice in a row (a fresh session did not help)."""

    code = "SFV-455"
    exit_code = 77
    template = "{org}: the Pub/Sub API refused the session: {what}"


class RecoveryPointUnavailable(PermanentError, CdcError):
    """A recovery point at T needs a snapshot of the object committed at or before T, and change
    events up to T that the subscriber has committed."""

    code = "SFV-456"
    exit_code = 4
    http_status = 409
    template = "{org}: no recovery point of {object} at {at}: {what}"


class RecoveryPointNotDurable(RecoveryPointUnavailable):
    """T is later than what the committed segments prove complete (the newest segment's covered
    instant): change events committed before T may not have been received yet, so the recovery
    point would silently miss them."""

    code = "SFV-458"
    template = (
        "{org}: no recovery point of {object} at {at} yet: its change events are durable only up to "
        "{covered}; run `sfvault cdp run {org}` (or wait for the running subscriber's next segment) "
        "and retry, or pick an instant at or before {covered}"
    )


# --- catalog -------------------------------------------------------------------------------


class CatalogError(PermanentError):
    code = "SFV-500"
    exit_code = 70
    template = "catalog error: {what}"


class CatalogSchemaOutdated(CatalogError):
    code = "SFV-501"
    exit_code = 2
    http_status = 503
    template = (
        "catalog {url} is at schema {version}, this sfvault needs {expected}; run `sfvault catalog upgrade`"
    )


class CatalogMigrationFailed(CatalogError):
    code = "SFV-502"
    template = "migrating catalog {url} failed: {what}"


class OrgExists(CatalogError):
    code = "SFV-503"
    exit_code = 2
    http_status = 409
    template = (
        "an org named {name} is already connected; change its credentials with `sfvault org update {name}`"
    )


class OrgMismatch(CatalogError):
    """New credentials logged in to another Salesforce org than the one connected under the name."""

    code = "SFV-511"
    exit_code = 2
    http_status = 409
    template = (
        "the credentials for org {name} log in to Salesforce org {got}, not to the connected org {want}; "
        "nothing was saved"
    )


class InvalidJobTransition(CatalogError):
    code = "SFV-504"
    http_status = 409
    template = "job {name} is {state} and cannot become {target}"


class CatalogRebuildFailed(CatalogError):
    code = "SFV-505"
    template = "catalog rebuild failed on snapshot {name}: {what}"


class SealedSecretUnreadable(CatalogError):
    code = "SFV-506"
    exit_code = 77
    template = "the sealed secret {name} in the catalog does not open: wrong key or altered value"


# --- backup policies (engine/policy) -------------------------------------------------------


class PolicyError(PermanentError):
    """A backup policy refuses the request (schedule, quota, subscription, seats, roles)."""

    code = "SFV-600"
    exit_code = 3
    http_status = 409
    template = "refused by backup policy: {what}"


class JobAlreadyRunning(PolicyError):
    """Another job of the org is queued or running; one job of an org runs at a time."""

    code = "SFV-601"
    template = "a job of org {org} is already running ({job}); try again when it has finished"


class JobQuotaExhausted(PolicyError):
    """The subscription plan's jobs per 24 hours are used up (skipped and failed jobs do not count)."""

    code = "SFV-602"
    http_status = 429
    template = (
        "org {org} has used {used} of the {quota} jobs per 24 hours of plan {plan}; next free at {free_at}"
    )


class SubscriptionExpired(PolicyError):
    """The org's subscription has expired: the schedule stops and no new backup starts."""

    code = "SFV-603"
    http_status = 403
    template = (
        "the subscription of org {org} expired at {expired_at}; renew it to resume backups "
        "(`sfvault settings set {org} --subscription-expires-at ...`)"
    )


class SeatsExceeded(PolicyError):
    """Active Standard users exceed the purchased seats: backups stop, compare and export still work."""

    code = "SFV-604"
    http_status = 403
    template = (
        "org {org} has {active} active Standard users but {seats} purchased seats; backups are "
        "stopped until seats are added (`sfvault settings set {org} --purchased-seats N`) or users "
        "deactivated (compare and export still work)"
    )


class NoStorageLocation(PolicyError):
    """The org has no storage location configured, so there is nowhere to write a backup."""

    code = "SFV-605"
    template = (
        "org {org} has no storage location configured; set one with "
        "`sfvault settings set {org} --storage-location URL`, then back up again"
    )


class FullBackupRequired(PolicyError):
    """Choosing objects is allowed only once the org has a completed full backup."""

    code = "SFV-606"
    template = "org {org} has no full backup yet; back up all objects first, then choose objects"


class RoleNotAllowed(PolicyError):
    """The caller's role does not grant this action."""

    code = "SFV-607"
    exit_code = 77
    http_status = 403
    template = "role {role} may not {action}"


class InvalidPolicySetting(PolicyError):
    """A schedule or policy setting is out of range or malformed."""

    code = "SFV-608"
    exit_code = 2
    http_status = 422
    template = "invalid setting {field}: {what}"


class UnknownTimeZone(InvalidPolicySetting):
    """Not an IANA time zone name (Salesforce's TimeZoneSidKey values are IANA names)."""

    code = "SFV-609"
    template = "unknown time zone {name!r}: expected an IANA name such as America/New_York"


class UnknownPlan(InvalidPolicySetting):
    """The org's subscription plan is not one this deployment knows."""

    code = "SFV-610"
    template = "unknown subscription plan {plan!r}; known plans: {known}"


class CdpSettingRefused(InvalidPolicySetting):
    """A continuous data protection setting cannot be applied (decision 0026)."""

    code = "SFV-620"
    template = "continuous data protection of {org}: {what}"


class CdpFileObjectRefused(CdpSettingRefused):
    """File objects carry their bodies outside change events: they cannot be protected by them."""

    code = "SFV-621"
    template = (
        "continuous data protection of {org}: {object} is a file object (its bodies are not in change "
        "events); back it up with scheduled jobs"
    )


class CdpObjectNotEnabled(CdpSettingRefused):
    """The org does not publish change events for the object (Setup > Change Data Capture)."""

    code = "SFV-622"
    template = (
        "continuous data protection of {org}: Change Data Capture is not enabled for {object} in the "
        "org (select it in Setup > Change Data Capture): {what}"
    )


class CdpDisabled(CdpSettingRefused):
    """``sfvault cdp run`` without ``--objects`` for an org whose protection is off."""

    code = "SFV-623"
    template = (
        "continuous data protection of {org} is off: enable it with `sfvault cdp enable {org} --objects A,B`"
    )


class CdpTimingRefused(CdpSettingRefused):
    """The start time or interval of continuous data protection is out of range (decision 0033)."""

    code = "SFV-624"
    template = "continuous data protection of {org}: {what}"


class CdpSubscriberFailed(CdcError):
    """The service's subscriber of an org stopped on an error that is not an SfvaultError (a defect
    or an unexpected library failure): logged, shown by ``GET /v1/orgs/{org}/cdp`` and retried
    with backoff; the service goes on."""

    code = "SFV-625"
    template = "{org}: the change event subscriber stopped: {what}"


# --- recovery points, compare and exports (engine/diff, issue 6) ----------------------------


class DiffError(PermanentError):
    """A recovery point, compare or export request cannot be answered."""

    code = "SFV-700"
    exit_code = 1
    template = "recovery point error: {what}"


class UnknownOrg(DiffError):
    """The repository holds no snapshot of this org."""

    code = "SFV-701"
    exit_code = 4
    http_status = 404
    template = "org {org} has no snapshot in the repository"


class UnknownJob(DiffError):
    """No committed snapshot of the org has this job id."""

    code = "SFV-702"
    exit_code = 4
    http_status = 404
    template = "org {org} has no committed job {job}"


class JobNotInCycle(DiffError):
    """Two jobs of a compare (or an export's jobs) belong to different backup cycles."""

    code = "SFV-703"
    exit_code = 2
    http_status = 409
    template = "job {job} belongs to cycle {cycle}, not to cycle {expected} of job {other}"


class ObjectNotInBackup(DiffError):
    """The object was not captured in full by any job of the cycle up to the chosen job."""

    code = "SFV-704"
    exit_code = 4
    http_status = 404
    template = "object {object} is not in the backup of org {org} at job {job}"


class ScratchFull(DiffError):
    """Decrypted chunks would exceed the scratch folder's byte limit."""

    code = "SFV-705"
    exit_code = 74
    http_status = 507
    template = "scratch folder {path} would exceed its limit of {limit} bytes"


class ExportAlreadyRunning(DiffError):
    """Another export of the org is queued or running; one export of an org runs at a time."""

    code = "SFV-706"
    exit_code = 73
    http_status = 409
    template = "org {org} already has export {export} {state}; a second one does not start"


class ExportLimitExceeded(DiffError):
    """The monthly export volume of the org would be exceeded."""

    code = "SFV-707"
    exit_code = 3
    http_status = 429
    template = (
        "org {org} exported {used} bytes since {since}; with about {planned} more bytes it would "
        "exceed the monthly limit of {limit} bytes"
    )


class WrongZipPassword(DiffError):
    """The password does not open the export archive."""

    code = "SFV-708"
    exit_code = 77
    http_status = 403
    template = "the password does not open export archive {path}"


class NoPreviousJob(DiffError):
    """A compare or a ``changed`` export needs a job before the chosen one in the same cycle."""

    code = "SFV-709"
    exit_code = 2
    http_status = 409
    template = "job {job} is the first job of its cycle; there is no previous job to compare with"


class ExportNotReady(DiffError):
    """The export has not succeeded (yet), so it has no archive to download."""

    code = "SFV-710"
    exit_code = 75
    http_status = 409
    template = "export {export} is {state}; its archive is available once it has succeeded"


class CompareNotReady(DiffError):
    """The compare has not succeeded (yet), so it has no details to show."""

    code = "SFV-711"
    exit_code = 75
    http_status = 409
    template = "compare {compare} is {state}; its details are available once it has succeeded"


class NotQueued(DiffError):
    """A queued export or compare runs once; this one has already started or finished."""

    code = "SFV-712"
    exit_code = 73
    http_status = 409
    template = "{kind} {id} is {state}, not queued; it runs only once"


class QueuedJobAbandoned(DiffError):
    """A queued export or compare stayed ``running`` without a heartbeat: the process that ran it
    died (or was stopped) before it finished; its partial output was removed."""

    code = "SFV-713"
    exit_code = 75
    http_status = 409
    template = "{kind} {id} was abandoned: its process stopped sending heartbeats (last at {heartbeat})"


class JobPruned(DiffError):
    """The job's snapshot was removed by ``sfvault prune`` (retention) or set aside by ``sfvault
    repair``: its data can no longer be compared or exported."""

    code = "SFV-714"
    exit_code = 4
    http_status = 410
    template = (
        "job {job} of org {org} was {reason} on {at}; compare or export a job that "
        "`sfvault data {org} --job ID` accepts (the newest is {newest})"
    )


class ExportTargetInvalid(DiffError):
    """The export's target path cannot hold the ZIP: a directory, a device or other special file,
    or a folder where no file can be created (read-only, special file system)."""

    code = "SFV-715"
    exit_code = 73
    http_status = 422
    template = "cannot write the export archive to {path}: {why}"


# --- the REST API (api/, issue 7) ------------------------------------------------------------


class ApiError(PermanentError):
    """A request the API refuses before it reaches the engine."""

    code = "SFV-900"
    exit_code = 2
    http_status = 400
    template = "API request refused: {what}"


class Unauthenticated(ApiError):
    code = "SFV-901"
    exit_code = 77
    http_status = 401
    template = "a valid API token is required (header `Authorization: Bearer <token>`)"


class Forbidden(ApiError):
    code = "SFV-902"
    exit_code = 77
    http_status = 403
    template = "the {role} role may not {action}; it needs the {needed} role"


class InvalidRequest(ApiError):
    code = "SFV-903"
    exit_code = 2
    http_status = 422
    template = "invalid request: {what}"


class RouteNotFound(ApiError):
    code = "SFV-904"
    exit_code = 4
    http_status = 404
    template = "no such endpoint: {method} {path}"


class ServiceShuttingDown(ApiError):
    code = "SFV-905"
    exit_code = 75
    http_status = 503
    template = "the service is shutting down and accepts no new jobs"


class RequestTooLarge(ApiError):
    """The request body is larger than the API accepts (no route needs more than a few KB)."""

    code = "SFV-906"
    exit_code = 2
    http_status = 413
    template = "the request body is larger than {limit} bytes"


class JobNotCancellable(ApiError):
    """Only a queued or running backup job can be cancelled; this one has already finished."""

    code = "SFV-910"
    exit_code = 1
    http_status = 409
    template = "job {job} is {state}; only a queued or running job can be cancelled"


class JobStartTimeout(ApiError):
    code = "SFV-911"
    exit_code = 75
    http_status = 504
    template = "the backup of {org} was not recorded within {seconds} s; it may still start, see the job list"


class PermissionReportMissing(ApiError):
    """The org exists but no permission check has run for it yet."""

    code = "SFV-915"
    exit_code = 4
    http_status = 404
    template = "org {org} has no permission report yet; run one with POST /v1/orgs/{org}/permission-checks"


class NotificationFailed(TransientError):
    """An outbox message could not be handed to the SMTP server (it is tried again)."""

    code = "SFV-916"
    exit_code = 75
    http_status = 503
    template = "sending message {id} to {recipient} failed: {what}"


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
