"""store: local directory and S3 (moto server) behave the same."""

from __future__ import annotations

import errno
import os

import pytest

from trader_ml.errors import NotFoundError, PreconditionFailed, StoreError
from trader_ml.store import LocalStore, S3Store, content_etag, open_store


def test_write_read_list_exists_delete(any_store):
    any_store.write("data/context/date=2024-01-02/part.parquet", b"one")
    any_store.write("data/context/date=2024-01-03/part.parquet", b"two")
    any_store.write("models/latest.json", b"{}")
    assert any_store.read("data/context/date=2024-01-03/part.parquet") == b"two"
    assert any_store.list("data/") == [
        "data/context/date=2024-01-02/part.parquet",
        "data/context/date=2024-01-03/part.parquet",
    ]
    assert any_store.list("models/lat") == ["models/latest.json"]
    assert any_store.list("nothing/") == []
    # a prefix that ends inside a folder's name matches that folder's keys and no sibling's
    assert any_store.list("data/context/date=2024-01-0") == any_store.list("data/")
    assert any_store.list("data/context/date=2024-01-03") == ["data/context/date=2024-01-03/part.parquet"]
    assert any_store.list("data/cont") == any_store.list("data/") and any_store.list("data/contexts") == []
    assert any_store.exists("models/latest.json")
    assert not any_store.exists("models/other.json")
    any_store.delete("models/latest.json")
    assert not any_store.exists("models/latest.json")
    with pytest.raises(NotFoundError, match="models/latest.json"):
        any_store.read("models/latest.json")


def test_write_replaces_atomically(any_store):
    any_store.write("a/b.bin", b"first")
    any_store.write("a/b.bin", b"second")
    assert any_store.read("a/b.bin") == b"second"
    assert any_store.list("") == ["a/b.bin"]  # no temp files left behind


def test_create_never_overwrites(any_store):
    any_store.create("models/regime_v20260130.onnx", b"model")
    with pytest.raises(PreconditionFailed):
        any_store.create("models/regime_v20260130.onnx", b"other")
    assert any_store.read("models/regime_v20260130.onnx") == b"model"


def test_swap_is_compare_and_swap(any_store):
    key = "models/latest.json"
    first = any_store.swap(key, b"v1", expected_etag=None)
    assert first == content_etag(b"v1")
    with pytest.raises(PreconditionFailed):
        any_store.swap(key, b"v1-again", expected_etag=None)  # must be absent
    data, etag = any_store.read_versioned(key)
    assert (data, etag) == (b"v1", first)
    second = any_store.swap(key, b"v2", expected_etag=etag)
    with pytest.raises(PreconditionFailed):
        any_store.swap(key, b"stale", expected_etag=etag)  # someone moved it since
    assert any_store.read_versioned(key) == (b"v2", second)


def test_read_many_write_many(any_store):
    items = [(f"p/{i:03d}", bytes([i])) for i in range(40)]
    assert any_store.write_many(items) == 40
    assert any_store.read_many([k for k, _ in items]) == [v for _, v in items]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_rejects_keys_that_escape(any_store, key):
    with pytest.raises(StoreError, match="invalid store key"):
        any_store.write(key, b"x")


def test_open_store_picks_backend(tmp_path):
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.url) == ("bucket", "some/prefix/", "s3://bucket/some/prefix/")
    with pytest.raises(StoreError, match="invalid S3 URL"):
        open_store("s3://")


def test_s3_prefix_isolates_keys(s3_store, bucket, aws_env):
    other = S3Store(f"s3://{bucket}/elsewhere", endpoint_url=aws_env)
    s3_store.write("k", b"1")
    assert other.list("") == []
    assert s3_store.list("") == ["k"]


def test_s3_unreachable_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    store = S3Store("s3://bucket", region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1)
    with pytest.raises(StoreError, match="cannot read s3://bucket/models/latest.json"):
        store.read("models/latest.json")


def test_missing_credentials_name_the_usual_ways(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials an earlier test found
    store = S3Store("s3://bucket", region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1)
    with pytest.raises(StoreError, match="no AWS credentials found") as error:
        store.read("models/latest.json")
    assert "AWS_ACCESS_KEY_ID" in str(error.value) and "aws configure" in str(error.value)
    assert "use a local store: --store ./store" in str(error.value)  # what a laptop without AWS needs


def test_a_link_that_leaves_the_store_is_refused(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the store's")
    store = LocalStore(tmp_path / "store")
    store.write("models/a.json", b"{}")
    (store.root / "models" / "latest.json").symlink_to(outside)
    with pytest.raises(StoreError, match="is a link that leaves the store"):
        store.read("models/latest.json")
    store.write("models/latest.json", b"{}")  # a write replaces the link itself, never follows it
    assert outside.read_text() == "not the store's" and not (store.root / "models" / "latest.json").is_symlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store.root / "reports").symlink_to(elsewhere)  # a folder that leaves the store
    with pytest.raises(StoreError, match="is a link that leaves the store"):
        LocalStore(store.root).write("reports/v1/index.html", b"<html>")
    assert not any(elsewhere.iterdir())


def test_stale_temp_files_are_swept_by_the_next_write(tmp_path):
    import os
    import time

    store = LocalStore(tmp_path / "store")
    store.write("data/x.json", b"1")
    old, fresh = store.root / "data" / ".y.json.tmp-dead", store.root / "data" / ".z.json.tmp-live"
    old.write_bytes(b"left by a killed writer")
    fresh.write_bytes(b"another writer, right now")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    LocalStore(store.root).write("data/x.json", b"2")
    assert not old.exists() and fresh.exists()


def test_a_planted_lock_link_is_refused_and_nothing_is_created_outside(tmp_path):
    outside = tmp_path / "outside"
    store = LocalStore(tmp_path / "store")
    store.write("models/x.json", b"{}")
    (store.root / "models" / ".latest.json.lock").symlink_to(outside)
    with pytest.raises(StoreError, match="a link there is refused"):
        store.swap("models/latest.json", b"{}", None)
    assert not outside.exists() and not store.exists("models/latest.json")


def test_a_temp_name_taken_by_a_link_is_never_written_through(tmp_path, monkeypatch):
    import uuid

    outside = tmp_path / "outside"
    store = LocalStore(tmp_path / "store")
    store.write("data/x.json", b"1")
    monkeypatch.setattr(uuid, "uuid4", lambda: type("U", (), {"hex": "fixed"})())
    (store.root / "data" / ".y.json.tmp-fixed").symlink_to(outside)
    with pytest.raises(StoreError, match="cannot write"):
        store.write("data/y.json", b"2")
    assert not outside.exists()


def test_s3_exists_reads_the_error_code_not_the_message(s3_store, monkeypatch):
    from botocore.exceptions import ClientError

    assert not s3_store.exists("nothing/here")

    def denied(**kwargs):  # access denied on a key whose name happens to hold "404"
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "HeadObject")

    monkeypatch.setattr(s3_store.client, "head_object", denied)
    with pytest.raises(StoreError, match="AccessDenied"):
        s3_store.exists("reports/v20260404/index.html")


_fdopen = os.fdopen


class _FullDisk:
    """A file object whose every write fails as a full disk does, after the file was created."""

    def __init__(self, fd: int) -> None:
        self.file = _fdopen(fd, "wb")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_that_fails_on_a_full_disk_leaves_no_temp_file(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    store.write("data/daily/date=2024-01-02/features.json", b"[]")  # the folder exists already
    monkeypatch.setattr("trader_ml.store.os.fdopen", lambda fd, mode: _FullDisk(fd))
    for write in (store.write, store.create):
        with pytest.raises(StoreError, match="No space left on device"):
            write("data/daily/date=2024-01-02/context.json", b"{}")
    folder = tmp_path / "store" / "data" / "daily" / "date=2024-01-02"
    assert sorted(p.name for p in folder.iterdir()) == ["features.json"]  # no zero-byte .tmp- left to keep


def test_a_folder_that_cannot_be_read_is_an_error_naming_it_never_absent(trained_store, tmp_path, capsys, monkeypatch):
    """One day folder at mode 000 (simulated: the tests run as root, whom permissions do not stop):
    train, predict and predict --date fail naming the folder instead of dropping the day."""
    from trader_ml.serving.daily import stored_days

    from .conftest import copy_of, main_here

    store = copy_of(trained_store, tmp_path / "store")
    day = stored_days(store)[-3]
    real = os.scandir

    def scandir(path):
        if str(path).endswith(f"date={day}"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr("trader_ml.store.os.scandir", scandir)
    for args in (("train", "--store", store.url, "--epochs", "1", "--quiet"), ("predict", "--store", store.url)):
        result = main_here(capsys, *args)
        assert result.returncode == 2 and f"date={day}: Permission denied" in result.stderr, result.stderr
    dated = main_here(capsys, "predict", "--store", store.url, "--date", day)
    assert (
        dated.returncode == 2 and "not a stored trading day" not in dated.stderr and "Permission denied" in dated.stderr
    )
