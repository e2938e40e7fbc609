"""Where recordings are kept: objects by key (`<stream session>/<name>`) in a directory of this
node. Blocking file work runs in a thread; every failure (disk full, permissions, a missing
mount) surfaces as `StorageError` with the operating system's reason."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path


class StorageError(Exception):
    """The store could not take or give back an object."""


class DirectoryStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root.joinpath(*parts)

    async def put(self, key: str, data: bytes) -> None:
        """Write the object whole: readers never see half of it."""
        path = self._path(key)
        await asyncio.to_thread(_write, path, data)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix/` (one recording)."""
        path = self._path(prefix)
        try:
            await asyncio.to_thread(shutil.rmtree, path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {prefix}: {exc.strerror or exc}") from exc


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path.name}: {exc.strerror or exc}") from exc
