"""The Salesforce HTTP client: one ``httpx.Client`` (pooled, thread-safe) per org connection.

Every request goes through :meth:`SalesforceClient.request` or :meth:`SalesforceClient.download`:

1. the URL is resolved against the session's instance URL (absolute URLs must point at the
   same origin: the bearer token is never sent anywhere else);
2. the call is counted in :class:`ApiUsage` by kind, and ``Sforce-Limit-Info`` is read from
   every answer;
3. a 401 ``INVALID_SESSION_ID`` refreshes the session once and repeats the call; a second 401
   is a permanent :class:`SalesforceAuthError`;
4. failures are classified at once (:mod:`engine.extract.classify`): transient ones
   (5xx, 429/503, resets, timeouts) are retried by the single tenacity wrapper of this module,
   ``wait_random_exponential`` bounded by :class:`ClientOptions`; permanent ones are raised.

QUERY_TIMEOUT (:class:`SalesforceQueryTimeout`) is a ``TransientError`` in the tree but is
*not* retried here: running the same query again times out again; the planner bisects instead.

Nothing here sleeps except tenacity between retries, through an injectable ``sleep``.
"""

from __future__ import annotations

import copy
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.errors import (
    PathUnusable,
    SalesforceApiLimit,
    SalesforceAuthError,
    SalesforceRequestFailed,
    SalesforceTransient,
)
from engine.extract import classify
from engine.extract.auth import Credentials, LoginGrant, Session, Token, request_token
from engine.extract.usage import ApiUsage, CallKind

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_API_VERSION = "62.0"


class ClientOptions(BaseModel):
    """How the client talks to Salesforce.

    Attributes:
        api_version: REST/Bulk 2.0 version without the ``v`` (negotiable, see
            :meth:`SalesforceClient.negotiate_version`).
        timeout_seconds / connect_timeout_seconds: per request.
        bulk_read_timeout_seconds: read timeout of the first try of a Bulk job status read or
            result page: a healthy org answers both within a second or two (results are files it
            already wrote), so a stalled one is retried instead of waited for. Each retry doubles
            it (up to ``timeout_seconds``), so an org that is merely slow still gets its answer.
            REST queries keep ``timeout_seconds``: a query can legitimately compute for a minute.
        retry_wait_max: upper bound of one random-exponential wait (0 in tests).
        retry_max_seconds: give up retrying after this long.
        retry_max_attempts: and after this many attempts.
        api_reserve: DailyApiRequests that must stay unused; new work stops below it.
        bulk_jobs_reserve: DailyBulkV2QueryJobs that must stay unused.
        max_connections: pool size (about the number of worker threads).
        gzip: ask for gzip (``Accept-Encoding: gzip``) on every call.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_version: str = DEFAULT_API_VERSION
    timeout_seconds: float = Field(default=120.0, gt=0)
    connect_timeout_seconds: float = Field(default=15.0, gt=0)
    bulk_read_timeout_seconds: float = Field(default=5.0, gt=0)
    retry_wait_max: float = Field(default=60.0, ge=0)
    retry_wait_multiplier: float = Field(default=0.5, ge=0)
    retry_max_seconds: float = Field(default=900.0, ge=0)
    retry_max_attempts: int = Field(default=8, ge=1)
    api_reserve: int = Field(default=1000, ge=0)
    bulk_jobs_reserve: int = Field(default=10, ge=0)
    max_connections: int = Field(default=32, ge=1)
    gzip: bool = True
    user_agent: str = "sfvault/0.1"
    ca_file: str | None = Field(default=None, description="extra CA bundle (a self-signed test org)")
    trust_env: bool = Field(default=True, description="honour proxy and SSL_CERT_FILE variables")

    @staticmethod
    def from_settings(settings: Settings, **overrides: Any) -> ClientOptions:
        """Options from the shared settings (retry bounds), with explicit overrides."""
        values: dict[str, Any] = {
            "retry_wait_max": settings.retry_wait_max,
            "retry_max_seconds": settings.retry_max_seconds,
        }
        for name in ("api_version", "api_reserve", "bulk_jobs_reserve"):
            v = getattr(settings, f"salesforce_{name}", None)
            if v is not None:
                values[name] = v
        values.update(overrides)
        return ClientOptions(**values)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def redact_url(url: str) -> str:
    """The URL without its query string (SOQL and locators are long; nothing secret is in them,
    but logs should stay short and never carry anything a caller put there by mistake)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class SalesforceClient:
    """REST + Bulk 2.0 transport for one org. Safe to share between threads.

    Build one with :meth:`connect`, use it, then :meth:`close` it (or use it as a context
    manager). It is not picklable: each Dask worker builds its own from a credentials reference.
    """

    def __init__(
        self,
        credentials: Credentials,
        options: ClientOptions | None = None,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        usage: ApiUsage | None = None,
        token: Token | None = None,
    ) -> None:
        self.options = options or ClientOptions()
        self.clock = clock or SystemClock()
        self.usage = usage or ApiUsage()
        self._sleep = sleep
        self.api_version = self.options.api_version
        limits = httpx.Limits(
            max_connections=self.options.max_connections,
            max_keepalive_connections=self.options.max_connections,
        )
        timeout = httpx.Timeout(self.options.timeout_seconds, connect=self.options.connect_timeout_seconds)
        headers = {"User-Agent": self.options.user_agent, "Accept": "application/json"}
        # httpx would otherwise advertise every encoding it can decode.
        headers["Accept-Encoding"] = "gzip" if self.options.gzip else "identity"
        verify: ssl.SSLContext | bool = True
        if self.options.ca_file:
            try:
                verify = ssl.create_default_context(cafile=self.options.ca_file)
            except (OSError, ssl.SSLError) as exc:  # missing, unreadable, or not PEM: the org's ca_file
                what = f"ca_file: {getattr(exc, 'strerror', None) or type(exc).__name__}"
                raise PathUnusable(path=self.options.ca_file, what=what) from None
        self.http = httpx.Client(
            limits=limits,
            timeout=timeout,
            headers=headers,
            transport=transport,
            follow_redirects=False,
            verify=verify,
            trust_env=self.options.trust_env,
        )
        self.session = Session(credentials, self._fetch_token, token=token)
        self._owns_http = True
        self._timeout: httpx.Timeout | None = None

    def derive(
        self, *, usage: ApiUsage | None = None, timeout_seconds: float | None = None
    ) -> SalesforceClient:
        """A client sharing this one's connection pool and session, with its own usage counters.

        Cheap (no new pool, no new TLS context: building those costs tens of milliseconds, far
        more on a loaded machine), so a task or a planning step takes one of its own.
        ``timeout_seconds`` sets its own read timeout. Closing it leaves the shared pool open.
        """
        c = copy.copy(self)
        c.usage = usage or ApiUsage()
        if c.usage is not self.usage and c.usage.parent is None:
            c.usage.parent = self.usage  # the allowance it sees is the job's too
        c._owns_http = False
        if timeout_seconds is not None:
            c._timeout = httpx.Timeout(timeout_seconds, connect=self.options.connect_timeout_seconds)
        return c

    @classmethod
    def connect(
        cls, credentials: Credentials, options: ClientOptions | None = None, **kw: Any
    ) -> SalesforceClient:
        """A client that has logged in (so bad credentials fail here, not mid-job)."""
        client = cls(credentials, options, **kw)
        try:
            _ = client.session.token
        except BaseException:
            client.close()
            raise
        return client

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SalesforceClient({self.session!r}, api_version={self.api_version!r})"

    # --- retry ---------------------------------------------------------------------------

    def retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the one retry policy: transient Salesforce errors only."""
        o = self.options
        retryer = Retrying(
            retry=retry_if_exception_type(SalesforceTransient),
            wait=wait_random_exponential(multiplier=o.retry_wait_multiplier, max=o.retry_wait_max),
            stop=stop_after_attempt(o.retry_max_attempts) | stop_after_delay(o.retry_max_seconds),
            sleep=self._sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        return retryer(fn)

    def _fetch_token(self, grant: LoginGrant) -> Token:
        def once() -> Token:
            self.usage.count("login")
            return request_token(grant, self.http, self.clock)

        return self.retrying(once)

    # --- URLs ----------------------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        return self.session.instance_url

    @property
    def data_path(self) -> str:
        """``/services/data/vNN.N``."""
        return f"/services/data/v{self.api_version}"

    def url(self, path: str) -> str:
        """Resolve ``path``: absolute URL (same origin only), ``/services/...`` or data-relative."""
        base = self.instance_url
        if path.startswith(("http://", "https://")):
            if _origin(path) != _origin(base):
                raise ValueError(f"refusing to send the session to another host: {redact_url(path)}")
            return path
        if path.startswith("/"):
            return base + path
        return f"{base}{self.data_path}/{path}"

    # --- requests ------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        kind: CallKind,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        sobject: str,
        stream: bool,
        attempt: int = 0,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One logical attempt (``attempt`` counts the earlier ones): send, and on
        INVALID_SESSION_ID refresh once and send again."""
        for refreshed in (False, True):
            generation, bearer = self.session.bearer()
            h = {"Authorization": bearer, **(headers or {})}
            if "/services/async/" in url:  # Bulk API 1.0 authenticates with the session id header
                h["X-SFDC-Session"] = bearer.split(" ", 1)[-1]
            timeout: httpx.Timeout | float | None = self._timeout
            if method == "GET" and kind in ("bulk2_job", "bulk2_results_page", "bulk1_job", "bulk1_results"):
                o = self.options
                timeout = min(o.timeout_seconds, o.bulk_read_timeout_seconds * 2 ** min(attempt, 10))
            if timeout is not None:
                req = self.http.build_request(
                    method, url, params=params, json=json, content=content, headers=h, timeout=timeout
                )
            else:
                req = self.http.build_request(
                    method, url, params=params, json=json, content=content, headers=h
                )
            try:
                resp = self.http.send(req, stream=stream)
            except httpx.TransportError as e:
                self.usage.count(kind)  # it may have reached Salesforce: counted (the figure errs high)
                raise classify.classify_transport(e) from None
            self.usage.observe_header(resp.headers.get("Sforce-Limit-Info"))
            self.usage.observe_date(resp.headers.get("Date"))
            if resp.status_code == 401 and classify.is_invalid_session(_read(resp)):
                self.usage.count("refused")  # no session, no call against the allowance
                _closed(resp)
                if refreshed:
                    raise SalesforceAuthError(
                        status=401, sf_code="INVALID_SESSION_ID", what="session refused again after a refresh"
                    )
                log.info("session expired, refreshing", extra={"kind": self.session.kind})
                self.session.refresh(stale_generation=generation)
                continue
            if resp.status_code >= 400:
                _closed(_read(resp))
                self.usage.count("refused" if classify.is_allowance_spent(resp) else kind)
                err = classify.classify(resp, sobject=sobject)
                assert err is not None
                raise err
            self.usage.count(kind)
            return resp
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        kind: CallKind = "rest",
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        sobject: str = "",
        content: bytes | None = None,
    ) -> httpx.Response:
        """A whole (small) response, retried on transient errors. For JSON and bounded pages;
        ``content`` is a raw body (Bulk API 1.0's XML documents and SOQL batches)."""
        url = self.url(path)
        tries = 0

        def attempt() -> httpx.Response:
            nonlocal tries
            tries += 1
            resp = self._send(method, url, kind, params=params, json=json, headers=headers, sobject=sobject,
                              stream=True, attempt=tries - 1, content=content)  # fmt: skip
            try:
                resp.read()
            except httpx.TransportError as e:
                raise classify.classify_transport(e) from None
            finally:
                _closed(resp)
            self.usage.add_bytes(resp.num_bytes_downloaded)
            return resp

        return self.retrying(attempt)

    def get_json(self, path: str, kind: CallKind = "rest", **kw: Any) -> Any:
        return self.request("GET", path, kind, **kw).json()

    @contextmanager
    def _stream(
        self, url: str, kind: CallKind, headers: Mapping[str, str] | None
    ) -> Iterator[httpx.Response]:
        resp = self._send("GET", url, kind, params=None, json=None, headers=headers, sobject="", stream=True)
        try:
            yield resp
        finally:
            self.usage.add_bytes(resp.num_bytes_downloaded)
            _closed(resp)

    def download(
        self,
        path: str,
        write: Callable[[bytes], object],
        *,
        restart: Callable[[], object] | None = None,
        kind: CallKind = "blob",
        chunk_size: int = 1 << 20,
    ) -> int:
        """Stream a body to ``write`` in chunks of up to ``chunk_size``; returns the byte count.

        Memory is bounded by ``chunk_size``. A transient failure mid-body retries the whole
        download: ``restart()`` is called first so the receiver can truncate what it has (a
        download without ``restart`` is not retried after its first byte was written).
        """
        url = self.url(path)
        written = 0

        def attempt() -> int:
            nonlocal written
            if written:
                if restart is None:
                    raise SalesforceRequestFailed(
                        status=0, sf_code="PARTIAL_DOWNLOAD", what="download broke after data was written"
                    )
                restart()
                written = 0
            try:
                with self._stream(url, kind, {"Accept": "*/*"}) as resp:
                    for chunk in resp.iter_bytes(chunk_size):
                        write(chunk)
                        written += len(chunk)
            except httpx.TransportError as e:
                raise classify.classify_transport(e) from None
            return written

        return self.retrying(attempt)

    # --- versions, limits, reserve -------------------------------------------------------

    def versions(self) -> list[str]:
        """Versions the org serves (``GET /services/data``, unauthenticated), ascending."""

        def attempt() -> list[str]:
            self.usage.count("versions")
            try:
                resp = self.http.get(self.instance_url + "/services/data/")
            except httpx.TransportError as e:
                raise classify.classify_transport(e) from None
            err = classify.classify(resp)
            if err is not None:
                raise err
            return [str(v["version"]) for v in resp.json()]

        got = self.retrying(attempt)
        return sorted(got, key=lambda v: tuple(int(p) for p in v.split(".")))

    def negotiate_version(self, wanted: str | None = None) -> str:
        """Use ``wanted`` (default: the configured version) if served, else the highest below it,
        else the lowest served. Sets and returns :attr:`api_version`."""
        want = wanted or self.options.api_version
        served = self.versions()
        key = lambda v: tuple(int(p) for p in v.split("."))  # noqa: E731
        below = [v for v in served if key(v) <= key(want)]
        self.api_version = below[-1] if below else served[0]
        return self.api_version

    def limits(self) -> dict[str, Any]:
        """``GET /limits`` (one REST call); also recorded in :attr:`usage`."""
        body: dict[str, Any] = self.get_json("limits")
        self.usage.observe_limits(body)
        return body

    def check_reserve(self, *, bulk_jobs: int = 0, bulk_batches: int = 0, refresh: bool = False) -> None:
        """Refuse to start new work that would dip into the reserved allowance.

        Uses the latest ``Sforce-Limit-Info`` (fresh on every answer); reads ``/limits`` when
        nothing is known yet, when ``refresh`` is set, or when ``bulk_jobs`` are about to be
        created (DailyBulkV2QueryJobs is only reported there), or ``bulk_batches`` Bulk API 1.0
        batches (DailyBulkApiBatches, likewise).

        Raises:
            SalesforceApiLimit: remaining DailyApiRequests < ``api_reserve``, or remaining
                DailyBulkV2QueryJobs - ``bulk_jobs`` (DailyBulkApiBatches - ``bulk_batches``)
                < ``bulk_jobs_reserve``.
        """
        o = self.options
        if (
            refresh
            or self.usage.remaining is None
            or (bulk_jobs and self.usage.limit("DailyBulkV2QueryJobs") is None)
            or (bulk_batches and self.usage.limit("DailyBulkApiBatches") is None)
        ):
            self.limits()
        remaining = self.usage.remaining
        if remaining is not None and remaining < o.api_reserve:
            raise SalesforceApiLimit(remaining=remaining, limit=self.usage.org_max, what="DailyApiRequests")
        jobs = self.usage.limit("DailyBulkV2QueryJobs")
        if bulk_jobs and jobs is not None and jobs[1] - bulk_jobs < o.bulk_jobs_reserve:
            raise SalesforceApiLimit(remaining=jobs[1], limit=jobs[0], what="DailyBulkV2QueryJobs")
        batches = self.usage.limit("DailyBulkApiBatches")
        if bulk_batches and batches is not None and batches[1] - bulk_batches < o.bulk_jobs_reserve:
            raise SalesforceApiLimit(remaining=batches[1], limit=batches[0], what="DailyBulkApiBatches")


def _closed(resp: httpx.Response) -> httpx.Response:
    """Close ``resp`` and cut it from its stream, so that dropping it frees its body at once.

    httpx keeps a response and its stream in a reference cycle (the stream wrapper holds the
    response), which only Python's cyclic GC breaks. A response's body then outlived its use by
    as long as the GC waited: on a 10M-record full, the 16 MiB result pages already parsed made
    most of a worker's peak memory, which grew with the length of the run (decision 0048). The
    body is read (or was streamed) before this; the empty stream is never read again.
    """
    resp.close()
    resp.stream = httpx.ByteStream(b"")
    return resp


def _read(resp: httpx.Response) -> httpx.Response:
    """Read a streamed error body (small) so it can be classified."""
    try:
        resp.read()
    except httpx.TransportError as e:
        raise classify.classify_transport(e) from None
    return resp


def _log_retry(state: Any) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("retrying Salesforce call", extra={"attempt": state.attempt_number, "error": str(exc)})
