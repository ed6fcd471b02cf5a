"""Where data and models live: a local directory or ``s3://bucket/prefix`` behind one interface.

Every write is atomic (temp file + rename locally, one PUT on S3). ``create`` writes only if
the key is absent and ``swap`` only if the key still has the ETag the caller read, so
versioned artifacts are never overwritten and ``latest.json`` moves by compare-and-swap.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from trader_ml.errors import NotFoundError, PreconditionFailed, StoreError

STALE_TEMP_SECONDS = 24 * 3600  # a temp file this old belongs to a writer that died
S3_WORKERS = 16  # S3 latency is per request; parallel requests hide it.
LOCAL_WORKERS = 4


@dataclass(frozen=True)
class S3Timeouts:
    """How long one S3 request may take: to connect, to wait for the next bytes of a reply, and
    how many attempts botocore makes in all (the first included), backing off between them."""

    connect_seconds: float = 5.0
    read_seconds: float = 30.0
    attempts: int = 5


# Ingest and train: a stalled request is retried, but never waits botocore's 60 s four times over.
BATCH_TIMEOUTS = S3Timeouts()
# Serving answers inside the Lambda's timeout (deploy/template.yaml: 120 s): one request takes at
# most 2 x (2 + 5) s plus a backoff, and the handler's own deadline bounds the whole invocation.
SERVING_TIMEOUTS = S3Timeouts(connect_seconds=2.0, read_seconds=5.0, attempts=2)


def content_etag(data: bytes) -> str:
    """The ETag S3 gives a single-part PUT (md5 hex); the local store uses the same."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class Store(ABC):
    """A flat key -> bytes namespace; keys are ``/``-separated relative paths."""

    url: str

    @abstractmethod
    def read(self, key: str) -> bytes:
        """Bytes at ``key``; NotFoundError when absent."""

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """Bytes and ETag at ``key``, for a later ``swap``."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Atomically create or replace ``key``."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> None:
        """Write ``key`` only if absent; PreconditionFailed otherwise."""

    @abstractmethod
    def swap(self, key: str, data: bytes, expected_etag: str | None) -> str:
        """Replace ``key`` only if its ETag is still ``expected_etag`` (None: must be absent).

        Returns the new ETag; PreconditionFailed when someone else moved it first.
        """

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Bytes at ``key`` without reading them; NotFoundError when absent."""
        return len(self.read(key))

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def read_many(self, keys: Sequence[str]) -> list[bytes]:
        return [self.read(k) for k in keys]

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> int:
        count = 0
        for key, data in items:
            self.write(key, data)
            count += 1
        return count

    def describe(self, key: str) -> str:
        """Human-readable location of a key, for messages."""
        return f"{self.url.rstrip('/')}/{key}"

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """No request starts more than ``seconds`` from now (S3: see there; a local disk does not stall)."""
        yield


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid store key {key!r}: keys are relative paths without '..'")
    return key


class LocalStore(Store):
    """A directory on disk; the embedded default."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)
        self._prepared: set[Path] = set()  # folders this process made, or swept of stale temp files
        self._real_root = Path(os.path.realpath(self.root))
        self._checked: set[Path] = set()

    def _path(self, key: str, reading: bool = True) -> Path:
        path = self.root / _check_key(key)
        self._check_folder(path.parent)
        # A write renames a temp file over the name, replacing a link rather than following it;
        # only a read would follow one.
        if reading and os.path.islink(path):
            self._refuse_link_out(path, key)
        return path

    def _check_folder(self, folder: Path) -> None:
        """A link planted inside a store could make it read or write files anywhere: each folder
        is checked once per process (a store has thousands of day folders)."""
        if folder in self._checked or folder == self.root:
            return
        self._check_folder(folder.parent)
        if os.path.islink(folder):
            self._refuse_link_out(folder, folder.relative_to(self.root).as_posix())
        self._checked.add(folder)

    def _refuse_link_out(self, path: Path, key: str) -> None:
        if not Path(os.path.realpath(path)).is_relative_to(self._real_root):
            raise StoreError(f"{self.describe(key)} is a link that leaves the store; refusing to follow it")

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"not found: {self.describe(key)}") from None
        except OSError as e:
            raise StoreError(f"cannot read {self.describe(key)}: {e.strerror}") from None

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        data = self.read(key)
        return data, content_etag(data)

    def _write_temp(self, path: Path, data: bytes, durable: bool) -> Path:
        if path.parent not in self._prepared:
            self._prepare_folder(path.parent)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            # A fresh name, created here or not at all: never a file or link someone planted.
            try:
                fd = os.open(tmp, flags, 0o644)
            except FileNotFoundError:  # the folder was removed since this process made it
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, flags, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as e:
            # A full disk, say: the partial temp file goes too, so nothing half-written stays behind.
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {path}: {e.strerror or e}") from None
        return tmp

    def write(self, key: str, data: bytes, durable: bool = False) -> None:
        path = self._path(key, reading=False)
        tmp = self._write_temp(path, data, durable)
        try:
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {path}: {e.strerror or e}") from None

    def _prepare_folder(self, folder: Path) -> None:
        """Once per folder and process: make it, or sweep it when it was there already (a folder
        made here holds no leftovers). A long ingest writes each file into a new day folder, so
        the system calls saved here are a good part of its time."""
        try:
            try:
                folder.mkdir()
            except FileNotFoundError:
                folder.mkdir(parents=True, exist_ok=True)
            self._prepared.add(folder)
        except FileExistsError:
            self._sweep(folder)
        except OSError as e:
            raise StoreError(f"cannot write {folder}: {e.strerror}") from None

    def _sweep(self, folder: Path) -> None:
        """Remove temp files a killed writer left in ``folder`` over a day ago (once per folder
        and process: a write must stay cheap)."""
        if folder in self._prepared:
            return
        self._prepared.add(folder)
        cutoff = time.time() - STALE_TEMP_SECONDS
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return  # a folder not made yet holds no leftovers
        for entry in entries:
            try:
                if entry.name.startswith(".") and ".tmp-" in entry.name and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                pass  # gone already, or not ours to remove

    def create(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_temp(path, data, durable=True)
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists: an exclusive create
        except FileExistsError:
            raise PreconditionFailed(f"already exists: {self.describe(key)}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def swap(self, key: str, data: bytes, expected_etag: str | None) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(f".{path.name}.lock")
        try:
            # O_NOFOLLOW: a link planted at the lock's name must not make this create a file elsewhere.
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise StoreError(f"cannot open the lock {lock_path}: {e.strerror} (a link there is refused)") from None
        with os.fdopen(fd, "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            current = content_etag(path.read_bytes()) if path.exists() else None
            if current != expected_etag:
                raise PreconditionFailed(
                    f"{self.describe(key)} changed since it was read (expected ETag {expected_etag}, found {current})"
                )
            self.write(key, data, durable=True)
        return content_etag(data)

    def exists(self, key: str) -> bool:
        path = self._path(key)
        try:
            return path.is_file()
        except OSError as e:  # is_file says False only for "no such file": anything else is an error
            raise StoreError(f"cannot check {path}: {e.strerror or e} (check its permissions)") from None

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"not found: {self.describe(key)}") from None

    def list(self, prefix: str) -> list[str]:
        # Plain strings and one scandir per folder, not pathlib or os.walk: the daily answer
        # lists every stored day, tens of thousands of files, and the walk's own bookkeeping
        # costs more than the system calls.
        base_key, _, _ = prefix.rpartition("/")
        root = str(self.root)
        keys: list[str] = []
        folders = [(os.path.join(root, base_key) if base_key else root, f"{base_key}/" if base_key else "")]
        while folders:
            folder, head = folders.pop()
            try:
                entries = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):  # nothing stored there: no keys
                continue
            except OSError as e:  # a folder that cannot be read holds keys nobody may miss silently
                raise StoreError(f"cannot list {folder}: {e.strerror or e} (check its permissions)") from None
            with entries:
                for entry in entries:
                    if entry.name.startswith("."):  # temp files and locks
                        continue
                    key = head + entry.name
                    if entry.is_dir():
                        # the walk starts at the prefix's folder, so a folder below it holds a
                        # key only if it extends the prefix; a link to a folder is not followed
                        if not entry.is_symlink() and f"{key}/".startswith(prefix):
                            folders.append((entry.path, f"{key}/"))
                    elif key.startswith(prefix):
                        keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> int:
        # File system calls release the GIL: a few threads hide their latency.
        with ThreadPoolExecutor(LOCAL_WORKERS) as pool:
            return sum(1 for _ in pool.map(lambda kv: self.write(*kv), items))

    def describe(self, key: str) -> str:
        return str(self.root / key)


class S3Store(Store):
    """``s3://bucket/prefix`` through boto3 (credentials and region from boto3's usual chain).

    ``endpoint_url`` (or the ``AWS_ENDPOINT_URL`` variable boto3 reads itself) points it at an
    S3-compatible service. Throttling and 5xx answers are retried with backoff by botocore.
    """

    def __init__(
        self,
        url: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        max_attempts: int | None = None,
        timeouts: S3Timeouts = BATCH_TIMEOUTS,
    ) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"invalid S3 URL {url!r}: expected s3://bucket[/prefix]")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.region = region
        self.endpoint_url = endpoint_url
        self.timeouts = timeouts
        self.max_attempts = max_attempts or timeouts.attempts
        self._client = None
        self._deadline: float | None = None  # time.monotonic() after which no request starts

    @property
    def client(self):
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise StoreError("S3 stores need boto3: pip install 'trader-ml[aws]'") from None
            config = Config(
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                max_pool_connections=S3_WORKERS,
                connect_timeout=self.timeouts.connect_seconds,
                read_timeout=self.timeouts.read_seconds,
            )
            self._client = boto3.client("s3", region_name=self.region, endpoint_url=self.endpoint_url, config=config)
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def _fail(self, action: str, key: str, error: Exception) -> StoreError:
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(error, NoCredentialsError):
            return StoreError(
                f"cannot {action} {self.describe(key)}: no AWS credentials found; provide them in one of the usual "
                "ways: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, a profile (aws configure, "
                "then AWS_PROFILE=name), or an instance or role profile where this runs; or, to work on this "
                "machine without AWS, use a local store: --store ./store (trader-ml ingest --source sample "
                "--store ./store fills one)"
            )

        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotFoundError(f"not found: {self.describe(key)}")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
                return PreconditionFailed(f"{self.describe(key)} exists already or changed since it was read")
            if code == "NoSuchBucket":
                url = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
                endpoint = f" --endpoint-url {url}" if url else ""
                return StoreError(
                    f"cannot {action} {self.describe(key)}: no such bucket {self.bucket}; create it with "
                    f"aws s3 mb s3://{self.bucket}{endpoint} (or name an existing bucket)"
                )
            return StoreError(f"cannot {action} {self.describe(key)}: {code or status}")
        return StoreError(f"cannot {action} {self.describe(key)}: {error}")

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """No request starts more than ``seconds`` from now (or past an outer deadline, if sooner):
        a stalled S3 becomes a StoreError in bounded time, so the caller can answer without it."""
        outer = self._deadline
        self._deadline = min(time.monotonic() + seconds, outer if outer is not None else float("inf"))
        try:
            yield
        finally:
            self._deadline = outer

    def _check_deadline(self, action: str, key: str) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise StoreError(f"cannot {action} {self.describe(key)}: S3 did not answer in time (the deadline passed)")

    def _call(self, action: str, key: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        self._check_deadline(action, key)
        try:
            return fn(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except (ClientError, BotoCoreError) as e:
            raise self._fail(action, key, e) from None

    def read(self, key: str) -> bytes:
        return self.read_versioned(key)[0]

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        response = self._call("read", key, self.client.get_object)
        return response["Body"].read(), response["ETag"].strip('"')

    def write(self, key: str, data: bytes) -> None:
        self._call("write", key, self.client.put_object, Body=data)

    def _conditional_put(self, action: str, key: str, data: bytes, **condition) -> str:
        """A conditional PUT; its ETag. When the reply is lost after S3 stored the object (a
        dropped connection, then botocore's retry refused with 412), the object is read back:
        holding exactly these bytes, the write was this one and counts as done."""
        try:
            return self._call(action, key, self.client.put_object, Body=data, **condition)["ETag"].strip('"')
        except StoreError as first:
            try:
                stored, etag = self.read_versioned(key)
            except StoreError:
                raise first from None
            if stored == data:
                return etag
            raise

    def create(self, key: str, data: bytes) -> None:
        self._conditional_put("create", key, data, IfNoneMatch="*")

    def swap(self, key: str, data: bytes, expected_etag: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if expected_etag is None else {"IfMatch": f'"{expected_etag}"'}
        return self._conditional_put("write", key, data, **condition)

    def exists(self, key: str) -> bool:
        try:
            self._call("check", key, self.client.head_object)
        except NotFoundError:  # _fail reads botocore's error code: 404, NoSuchKey, NotFound
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._call("check", key, self.client.head_object)["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys = []
        self._check_deadline("list", prefix)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as e:
            raise self._fail("list", prefix, e) from None
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object)

    def read_many(self, keys: Sequence[str]) -> list[bytes]:
        with ThreadPoolExecutor(S3_WORKERS) as pool:
            return list(pool.map(self.read, keys))

    def delete_many(self, keys: Sequence[str]) -> None:
        with ThreadPoolExecutor(S3_WORKERS) as pool:
            list(pool.map(self.delete, keys))

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> int:
        with ThreadPoolExecutor(S3_WORKERS) as pool:
            return sum(1 for _ in pool.map(lambda kv: self.write(*kv), items))


def open_store(
    url: str | os.PathLike[str],
    region: str | None = None,
    endpoint_url: str | None = None,
    timeouts: S3Timeouts = BATCH_TIMEOUTS,
) -> Store:
    """A store for ``s3://bucket/prefix``, ``file:///path`` or a plain directory path."""
    text = os.fspath(url)
    if text.startswith("s3://"):
        return S3Store(text, region=region, endpoint_url=endpoint_url, timeouts=timeouts)
    return LocalStore(text.removeprefix("file://"))
