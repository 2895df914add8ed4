"""Azure Blob Storage backend, through adlfs (``az://container/prefix``).

adlfs provides the connection (a connection string, or an account name with azure-identity's
``DefaultAzureCredential``), its event loop and the ranged, buffered reads (``fs.open``). Writes
use the blob client adlfs holds, because fsspec's file API neither aborts a failed upload nor
sends transfer checksums:

* ``put`` stages the object in 4 MiB blocks, each sent with a transactional Content-MD5 (Azure
  rejects a block damaged in transit), then commits the block list with ``If-None-Match: *``, so
  the object appears atomically and an existing one is never overwritten; the MD5 of the whole
  object is stored as its ``Content-MD5`` property. If the source fails mid-way nothing is
  committed (staged blocks are discarded by Azure after a week).
* SDK errors are classified here: 404 → ``ObjectNotFound``; 401/403 → ``BackendAuthError``;
  408/429/5xx, timeouts and connection errors → ``BackendTransient``; the rest → ``BackendError``.
* A missing container is created by the first ``put``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar, cast
from uuid import uuid4

from engine.errors import (
    BackendAuthError,
    BackendError,
    BackendTransient,
    ConfigError,
    ObjectExists,
    ObjectNotFound,
    SfvaultError,
)
from engine.sink.backend import (
    COPY_BLOCK,
    BackendProperties,
    Handle,
    Kind,
    LimitedReader,
    ObjectInfo,
    check_range,
    map_os_error,
    read_exactly,
)

T = TypeVar("T")

DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_connection_string(port: int, host: str = "127.0.0.1") -> str:
    """The well-known development-account connection string of an Azurite on ``host:port``."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={DEV_ACCOUNT_KEY};BlobEndpoint=http://{host}:{port}/devstoreaccount1;"
    )


def map_azure_error(err: BaseException, name: str) -> SfvaultError:
    """Classify an Azure SDK / aiohttp / OS error where it enters (STYLE rule 12)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(err, SfvaultError):
        return err
    if isinstance(err, ResourceNotFoundError | FileNotFoundError):
        return ObjectNotFound(name=name)
    if isinstance(err, ClientAuthenticationError):
        return BackendAuthError(name=name)
    if isinstance(err, ResourceExistsError):
        return ObjectExists(name=name)
    if isinstance(err, HttpResponseError):
        status = err.status_code or 0
        code = str(getattr(err, "error_code", "") or "")
        if status in (401, 403):
            return BackendAuthError(name=name)
        if status == 404:
            return ObjectNotFound(name=name)
        if status in (409, 412):  # BlobAlreadyExists, ContainerAlreadyExists, If-None-Match failed
            return ObjectExists(name=name)
        if status in (408, 429) or status >= 500:
            return BackendTransient(name=name, what=f"HTTP {status} {code}")
        return BackendError(name=name, what=f"HTTP {status} {code}")
    if isinstance(err, ServiceRequestError | ServiceResponseError | asyncio.TimeoutError | ConnectionError):
        return BackendTransient(name=name, what=type(err).__name__)
    try:
        import aiohttp

        if isinstance(err, aiohttp.ClientError):
            return BackendTransient(name=name, what=type(err).__name__)
    except ImportError:  # pragma: no cover - aiohttp ships with azure-storage-blob[aio]
        pass
    if isinstance(err, OSError):
        return map_os_error(err, name)
    return BackendError(name=name, what=type(err).__name__)


def parse_az_url(url: str) -> tuple[str, str]:
    """``az://container/some/prefix`` → ``("container", "some/prefix")``."""
    for scheme in ("az://", "abfs://", "azure://"):
        if url.startswith(scheme):
            rest = url[len(scheme) :].strip("/")
            container, _, prefix = rest.partition("/")
            if not container:
                break
            return container, prefix.strip("/")
    raise ConfigError(what=f"not an Azure repository URL (az://container/prefix): {url}")


class AzureBackend:
    """A Backend over one container and prefix of an Azure storage account."""

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        connection_string: str | None = None,
        account_name: str | None = None,
        block_size: int = COPY_BLOCK,
    ) -> None:
        from adlfs import AzureBlobFileSystem

        common: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
        if connection_string:
            self._fs = AzureBlobFileSystem(connection_string=connection_string, **common)
            self._account = "connection-string"
        elif account_name:
            self._fs = AzureBlobFileSystem(account_name=account_name, anon=False, **common)
            self._account = account_name
        else:
            raise ConfigError(what="an az:// repository needs azure_connection_string or azure_account_name")
        self.container = container
        self.prefix = prefix.strip("/")
        self.block_size = block_size
        self._container_client = self._fs.service_client.get_container_client(container)

    # --- helpers -------------------------------------------------------------------------

    def _blob(self, h: Handle) -> str:
        return f"{self.prefix}/{h.path}" if self.prefix else h.path

    def _run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, name: str, **kwargs: Any) -> T:
        from fsspec.asyn import sync

        try:
            return cast(T, sync(self._fs.loop, fn, *args, **kwargs))
        except Exception as err:
            raise map_azure_error(err, name) from err

    def properties(self) -> BackendProperties:
        location = f"az://{self.container}/{self.prefix}" if self.prefix else f"az://{self.container}"
        return BackendProperties(name="azure", location=location, persistent=True, transfer_checksums=True)

    # --- verbs ---------------------------------------------------------------------------

    def put(self, h: Handle, src: BinaryIO, size: int) -> None:
        if self._existing_size(h) is not None:
            self._check_same(h, size)
            return
        from azure.storage.blob import BlobBlock, ContentSettings

        bc = self._container_client.get_blob_client(self._blob(h))
        md5 = hashlib.md5(usedforsecurity=False)
        blocks: list[BlobBlock] = []
        copied = 0
        while copied < size:
            piece = read_exactly(src, min(self.block_size, size - copied))
            if not piece:
                raise BackendError(name=h.path, what=f"source ended after {copied} of {size} bytes")
            md5.update(piece)
            block_id = base64.b64encode(uuid4().hex.encode()).decode()
            self._stage(bc, block_id, piece, h)
            blocks.append(BlobBlock(block_id=block_id))
            copied += len(piece)
        if src.read(1):
            raise BackendError(name=h.path, what=f"source holds more than the declared {size} bytes")
        try:
            self._in_container(
                h,
                bc.commit_block_list,
                blocks,
                content_settings=ContentSettings(
                    content_type="application/octet-stream", content_md5=bytearray(md5.digest())
                ),
                headers={"If-None-Match": "*"},  # write-once: refuse to replace an existing blob
            )
        except ObjectExists:
            self._check_same(h, size)

    def _in_container(self, h: Handle, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kw: Any) -> T:
        """Run a write; if the container does not exist yet, create it once and run it again."""
        try:
            return self._run(fn, *args, name=h.path, **kw)
        except ObjectNotFound:
            self._create_container(h)
            return self._run(fn, *args, name=h.path, **kw)

    def _stage(self, bc: Any, block_id: str, piece: bytes, h: Handle) -> None:
        self._in_container(h, bc.stage_block, block_id, piece, length=len(piece), validate_content=True)

    def _create_container(self, h: Handle) -> None:
        try:
            self._run(self._container_client.create_container, name=h.path)
        except ObjectExists:
            pass

    def _existing_size(self, h: Handle) -> int | None:
        try:
            return self.stat(h).size
        except ObjectNotFound:
            return None

    def _check_same(self, h: Handle, size: int) -> None:
        existing = self._existing_size(h)
        if existing is None:
            raise BackendError(name=h.path, what="object vanished while publishing")
        if existing != size:
            raise ObjectExists(name=h.path)

    @contextmanager
    def get(self, h: Handle, *, offset: int = 0, length: int | None = None) -> Iterator[BinaryIO]:
        check_range(h, offset, length)
        path = f"{self.container}/{self._blob(h)}"
        try:
            fh = self._fs.open(path, "rb", block_size=self.block_size, cache_type="readahead")
            fh.seek(offset)
        except Exception as err:
            raise map_azure_error(err, h.path) from err
        try:
            yield cast(BinaryIO, _MappedReader(LimitedReader(fh, length), h.path))
        finally:
            fh.close()

    def stat(self, h: Handle) -> ObjectInfo:
        bc = self._container_client.get_blob_client(self._blob(h))
        props = self._run(bc.get_blob_properties, name=h.path)
        return ObjectInfo(h, int(props.size))

    def list(self, kind: Kind, prefix: str = "") -> Iterator[ObjectInfo]:
        base = f"{self.prefix}/" if self.prefix else ""
        start = base + (kind.value if kind is not Kind.CONFIG else "config")
        if kind is Kind.CHUNK and len(prefix) >= 2:
            start += f"/{prefix[:2]}/{prefix}"
        elif kind in (Kind.SNAPSHOT, Kind.LOCK, Kind.INDEX, Kind.QUARANTINE, Kind.KEY, Kind.SEGMENT):
            start += f"/{prefix}"

        async def collect() -> list[tuple[str, int]]:
            return [
                (b.name, int(b.size)) async for b in self._container_client.list_blobs(name_starts_with=start)
            ]

        try:
            items = self._run(collect, name=start)
        except ObjectNotFound:
            return
        for blob_name, size in items:
            h = Handle.from_path(blob_name[len(base) :])
            if h is not None and h.kind is kind and h.name.startswith(prefix):
                yield ObjectInfo(h, size)

    def delete(self, h: Handle) -> None:
        bc = self._container_client.get_blob_client(self._blob(h))
        self._run(bc.delete_blob, name=h.path)

    def close(self) -> None:
        """adlfs closes its clients when the filesystem is garbage collected."""


class _MappedReader:
    """Maps SDK errors raised while streaming a download to typed errors."""

    def __init__(self, inner: LimitedReader, name: str) -> None:
        self._inner = inner
        self._name = name

    def read(self, n: int = -1) -> bytes:
        try:
            return self._inner.read(n)
        except Exception as err:
            raise map_azure_error(err, self._name) from err

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()
