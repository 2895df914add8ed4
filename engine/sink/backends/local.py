"""Local folder backend (the default): plain files under a root, via fsspec's ``LocalFileSystem``.

``put`` writes to ``<dir>/.tmp-<random>`` in the target folder, fsyncs it, then publishes it with
``os.link`` (fails if the name exists, so concurrent writers cannot overwrite each other) and
fsyncs the folder. Filesystems without hard links fall back to ``os.rename`` after an existence
check (atomic, but a concurrent writer of the same name could win silently; same size means same
content for content-addressed objects). Temporary files are never listed; a crash can leave one
behind, which ``prune`` removes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast
from uuid import uuid4

from fsspec.implementations.local import LocalFileSystem

from engine.errors import BackendError, ObjectExists
from engine.sink.backend import (
    BackendProperties,
    Handle,
    Kind,
    LimitedReader,
    ObjectInfo,
    check_range,
    copy_stream,
    map_os_error,
)

TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBackend:
    """A Backend over a folder. ``root`` is a path or a ``file://`` URL."""

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        if text.startswith("file://"):
            text = text[len("file://") :]
        self.root = Path(text).expanduser().absolute()
        self._fs = LocalFileSystem(skip_instance_cache=True)

    def _path(self, h: Handle) -> Path:
        return self.root / h.path

    def properties(self) -> BackendProperties:
        return BackendProperties(
            name="local", location=f"file://{self.root}", persistent=True, local_path=str(self.root)
        )

    def put(self, h: Handle, src: BinaryIO, size: int) -> None:
        target = self._path(h)
        try:
            if self._check_existing(h, target, size):
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f"{TMP_PREFIX}{uuid4().hex}"
            try:
                with open(tmp, "xb") as fh:
                    copy_stream(src, fh.write, size, h.path)
                    fh.flush()
                    os.fsync(fh.fileno())
                self._publish(h, tmp, target, size)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(target.parent)
        except OSError as err:
            raise map_os_error(err, h.path) from err

    def _check_existing(self, h: Handle, target: Path, size: int) -> bool:
        try:
            existing = target.stat().st_size
        except FileNotFoundError:
            return False
        if existing != size:
            raise ObjectExists(name=h.path)
        return True

    def _publish(self, h: Handle, tmp: Path, target: Path, size: int) -> None:
        try:
            os.link(tmp, target)
        except FileExistsError:
            if not self._check_existing(h, target, size):
                raise BackendError(name=h.path, what="object vanished while publishing") from None
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if self._check_existing(h, target, size):
                return
            os.rename(tmp, target)

    @contextmanager
    def get(self, h: Handle, *, offset: int = 0, length: int | None = None) -> Iterator[BinaryIO]:
        check_range(h, offset, length)
        try:
            fh = self._fs.open(str(self._path(h)), "rb")
            fh.seek(offset)
        except OSError as err:
            raise map_os_error(err, h.path) from err
        reader = LimitedReader(fh, length)
        try:
            yield cast(BinaryIO, reader)
        except OSError as err:
            raise map_os_error(err, h.path) from err
        finally:
            fh.close()

    def stat(self, h: Handle) -> ObjectInfo:
        try:
            info = self._fs.info(str(self._path(h)))
        except OSError as err:
            raise map_os_error(err, h.path) from err
        if info["type"] != "file":
            raise map_os_error(FileNotFoundError(errno.ENOENT, "not a file"), h.path)
        return ObjectInfo(h, int(info["size"]))

    def list(self, kind: Kind, prefix: str = "") -> Iterator[ObjectInfo]:
        if kind is Kind.CONFIG:
            try:
                yield self.stat(Handle(Kind.CONFIG, "config"))
            except BackendError:
                return
            return
        base = self.root / kind.value
        if kind is Kind.CHUNK and len(prefix) >= 2:
            base = base / prefix[:2]
        if not base.is_dir():
            return
        try:
            found = self._fs.find(str(base), detail=True)
        except OSError as err:
            raise map_os_error(err, kind.value) from err
        for path, info in found.items():
            rel = Path(path).relative_to(self.root).as_posix()
            if Path(rel).name.startswith(TMP_PREFIX):
                continue
            h = Handle.from_path(rel)
            if h is not None and h.kind is kind and h.name.startswith(prefix):
                yield ObjectInfo(h, int(info["size"]))

    def delete(self, h: Handle) -> None:
        try:
            os.unlink(self._path(h))
        except OSError as err:
            raise map_os_error(err, h.path) from err

    def close(self) -> None:
        """Nothing to release."""
