"""Public errors of the orchestration layer (codes SFV-8xx; docs/OPERATIONS.md lists them).

Refusals that are policy decisions reuse the tree's policy errors: ``engine.errors.JobAlreadyRunning``
(SFV-601) and ``engine.errors.FullBackupRequired`` (SFV-606), re-exported here.
"""

from __future__ import annotations

from engine.errors import FullBackupRequired, JobAlreadyRunning, PermanentError

__all__ = [
    "CredentialsMissing",
    "FilesNotVisible",
    "FullBackupRequired",
    "JobAbandoned",
    "JobAlreadyRunning",
    "JobCancelled",
    "JobError",
    "NoObjectsInScope",
    "UnknownObjects",
    "WorkerPreflightFailed",
]


class JobError(PermanentError):
    code = "SFV-800"
    exit_code = 1
    template = "backup job error: {what}"


class JobCancelled(JobError):
    code = "SFV-801"
    exit_code = 130
    http_status = 409
    template = "job {job} was cancelled; nothing was committed"


class NoObjectsInScope(JobError):
    code = "SFV-802"
    exit_code = 2
    http_status = 400
    template = "nothing to back up for org {org}: {what}"


class CredentialsMissing(JobError):
    code = "SFV-803"
    exit_code = 2
    http_status = 400
    template = (
        "org {org} has no stored credentials (a rebuilt catalog keeps none); "
        "store them with `sfvault org update {org}`"
    )


class JobAbandoned(JobError):
    """Recorded on a job whose process died before it committed: its heartbeat stopped for
    ``Settings.job_stale_after_seconds`` (closed by the scheduler's tick or the org's next
    admission), or it was still ``running`` while nobody held the org's repository lock (closed
    when the next job took the lock). Nothing of it was committed."""

    code = "SFV-804"
    template = "job {job} was abandoned (its driver stopped before committing)"


class FilesNotVisible(JobError):
    """A warning on ContentVersion and ContentDocument, never raised: the object still succeeds.

    Without "Query All Files" Salesforce answers file queries with only the files shared with
    the backup user, and the user cannot count the others, so the job cannot say how many are
    missing; ``why`` says whether the permission is missing or could not be read.
    """

    code = "SFV-805"
    template = (
        "{object}: only files shared with the backup user were backed up ({why}); grant Query All "
        "Files (needs View All Data) to back up all files"
    )


class UnknownObjects(NoObjectsInScope):
    """A selection (``--objects``, the API's ``objects``) names objects the org's backup scope does
    not hold: the job is refused before it writes anything, naming them, rather than backing up the
    others and dropping these silently."""

    code = "SFV-806"
    template = (
        "org {org} has no object {names} in its backup scope (misspelled, not in the org, excluded "
        "or not queryable); known objects: `sfvault data {org}`"
    )


class WorkerPreflightFailed(JobError):
    """Checked on every Dask worker before extraction starts: each opens the repository and its
    key-encryption key as its tasks would. A worker that cannot (another working folder with a
    relative path, a key file not mounted on that host) fails the job at once with this code
    instead of failing object after object with SFV-301."""

    code = "SFV-807"
    exit_code = 77
    template = "Dask worker {worker} cannot open the repository or its key: {what}"
