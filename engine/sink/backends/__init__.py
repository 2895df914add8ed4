"""Backend implementations and the URL factory.

``open_backend(url, settings)`` is the one place a repository URL becomes a Backend stack:

* a plain path or ``file://path`` → :class:`LocalBackend` (the default);
* ``memory://`` → a fresh :class:`MemoryBackend` (tests only: nothing persists);
* ``az://container/prefix`` (or ``abfs://``) → :class:`AzureBackend`, authenticated with
  ``Settings.azure_connection_string`` or ``Settings.azure_account_name`` + DefaultAzureCredential.

The result is wrapped by :func:`engine.sink.wrappers.stack_backend` (retries + metrics).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from engine.config import Settings
from engine.errors import UnsupportedRepositoryUrl
from engine.sink.backend import Backend
from engine.sink.backends.local import LocalBackend
from engine.sink.backends.memory import MemoryBackend
from engine.sink.wrappers import stack_backend


def open_backend_impl(url: str, settings: Settings) -> Backend:
    """The bare implementation for ``url`` (no wrappers)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "file"):
        return LocalBackend(url)
    if scheme == "memory":
        return MemoryBackend()
    if scheme in ("az", "abfs", "azure"):
        from engine.sink.backends.azure import AzureBackend, parse_az_url

        container, prefix = parse_az_url(url)
        conn = settings.azure_connection_string
        return AzureBackend(
            container,
            prefix,
            connection_string=conn.get_secret_value() if conn else None,
            account_name=settings.azure_account_name,
        )
    raise UnsupportedRepositoryUrl(url=redact_url(url), what=f"unknown scheme {scheme!r}")


def open_backend(url: str, settings: Settings) -> Backend:
    """The production Backend stack for a repository URL (retries + metrics over the implementation)."""
    return stack_backend(
        open_backend_impl(url, settings),
        wait_max=settings.retry_wait_max,
        max_seconds=settings.retry_max_seconds,
    )


def redact_url(url: str) -> str:
    """Strip userinfo, query strings (SAS tokens) and fragments from a URL before it is logged."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


__all__ = ["LocalBackend", "MemoryBackend", "open_backend", "open_backend_impl", "redact_url"]
