"""Where recordings are kept: objects by key (`<stream session>/<name>`) in a directory of this
node (blocking file work in a thread), or in an S3-compatible bucket (AWS S3, MinIO, Cloudflare
R2, ...) through aioboto3, the optional `s3` extra. Every failure (disk full, permissions, a
missing mount, a bucket that cannot be reached) surfaces as `StorageError` with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from livecommerce.config import Settings

S3_DELETE_BATCH = 1000  # keys per DeleteObjects request (the API's limit)


class StorageError(Exception):
    """The store could not take or give back an object."""


class Storage(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete_prefix(self, prefix: str) -> None: ...


def storage_for(settings: Settings) -> Storage:
    """The bucket when RECORDINGS_S3_BUCKET is set, else RECORDINGS_DIR."""
    if settings.recordings_s3_bucket:
        return S3Storage(
            settings.recordings_s3_bucket,
            prefix=settings.recordings_s3_prefix,
            endpoint_url=settings.recordings_s3_endpoint_url or None,
            region=settings.recordings_s3_region or None,
        )
    return DirectoryStorage(settings.recordings_path)


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


class S3Storage:
    """Objects under `prefix` in an S3 bucket; credentials come the usual AWS way (environment
    variables such as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the instance's role)."""

    def __init__(self, bucket: str, *, prefix: str, endpoint_url: str | None, region: str | None) -> None:
        try:
            import aioboto3
            from botocore.config import Config
        except ImportError:
            raise RuntimeError(
                "RECORDINGS_S3_BUCKET needs the s3 extra: pip install 'livecommerce[s3]'"
            ) from None
        self.bucket = bucket
        self.prefix = prefix
        self._session = aioboto3.Session()
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            # a store that does not answer fails the write in seconds, not minutes
            "config": Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2}),
        }

    def _client(self) -> Any:
        return self._session.client("s3", **self._options)

    async def put(self, key: str, data: bytes) -> None:
        try:
            async with self._client() as s3:
                await s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except Exception as exc:
            raise StorageError(f"cannot write {key} to bucket {self.bucket}: {_reason(exc)}") from exc

    async def get(self, key: str) -> bytes | None:
        try:
            async with self._client() as s3:
                answer = await s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
                async with answer["Body"] as body:
                    return bytes(await body.read())
        except Exception as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise StorageError(f"cannot read {key} from bucket {self.bucket}: {_reason(exc)}") from exc

    async def delete_prefix(self, prefix: str) -> None:
        try:
            async with self._client() as s3:
                keys: list[dict[str, str]] = []
                pages = s3.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=f"{self.prefix}{prefix}/"
                )
                async for page in pages:
                    keys += [{"Key": item["Key"]} for item in page.get("Contents", [])]
                for start in range(0, len(keys), S3_DELETE_BATCH):
                    batch = keys[start : start + S3_DELETE_BATCH]
                    await s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except Exception as exc:
            raise StorageError(f"cannot delete {prefix} from bucket {self.bucket}: {_reason(exc)}") from exc


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _reason(exc: Exception) -> str:
    return _error_code(exc) or str(exc) or type(exc).__name__
