"""Files the backup user cannot see: the per-object warning of a job (PRODUCT.md "Backup cycles
and jobs": without "Query All Files" the files the integration user cannot see are reported).

Salesforce answers queries on ContentVersion and ContentDocument with only the files shared with
the user unless one of its permission sets grants ``PermissionsQueryAllFiles``
(SALESFORCE_API.md section 2.8). The user cannot count the files it cannot see, so the job
cannot report how many are missing: it reports that files may be missing, as a warning
(:class:`~engine.jobs.errors.FilesNotVisible`, SFV-805) on each file object it backs up. The
object and the job still succeed.

The permission is read with the permission check's own query
(:func:`engine.jobs.permission_check.user_has_permission`: one REST query on
``PermissionSetAssignment``), and only when a file object is in the job.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from engine.errors import SalesforceQueryError
from engine.extract.client import SalesforceClient
from engine.extract.rest import RestApi
from engine.jobs.errors import FilesNotVisible
from engine.jobs.permission_check import user_has_permission

FILE_OBJECTS = frozenset({"ContentDocument", "ContentVersion"})
"""Objects Salesforce limits to the user's files without Query All Files."""
QUERY_ALL_FILES = "PermissionsQueryAllFiles"


def file_warnings(
    client: SalesforceClient, objects: Iterable[str], *, now: datetime
) -> dict[str, tuple[str, str]]:
    """``{object: (code, message)}`` for each file object in ``objects`` when the backup user
    lacks Query All Files (or its permission sets cannot be read); ``{}`` when it has it.

    Makes no call when ``objects`` holds no file object.
    """
    files = sorted(FILE_OBJECTS.intersection(objects))
    if not files:
        return {}
    user_id = client.session.token.user_id
    if not user_id:
        why = "the login answer names no user, so its permissions could not be read"
    else:
        try:
            if user_has_permission(RestApi(client), user_id, QUERY_ALL_FILES, checked_at=now):
                return {}
            why = "the backup user lacks Query All Files"
        except SalesforceQueryError as err:
            why = f"the backup user's permission sets could not be read: {err.message}"
    return files_not_visible(files, why)


def files_not_visible(objects: Iterable[str], why: str) -> dict[str, tuple[str, str]]:
    """SFV-805 ``{object: (code, message)}`` for each file object of ``objects``."""
    files = sorted(FILE_OBJECTS.intersection(objects))
    return {name: (FilesNotVisible.code, FilesNotVisible(object=name, why=why).message) for name in files}
