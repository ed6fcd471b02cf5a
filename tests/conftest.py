"""Shared fixtures: deterministic small data, local stores, and moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import os
import runpy
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.store import LocalStore, S3Store

# The suite runs two workers on two cores, and the networks are small: one intra-op thread per
# process (inherited by the scripts the tests start) instead of two threads fighting per core.
for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

RECORDED = Path(__file__).parent / "recorded"
TODAY = dt.date(2026, 11, 26)  # tests pin "today" so nothing depends on the clock

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exit_code(exit_: SystemExit) -> int:
    """The status a process ending with ``exit_`` would have."""
    return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)


def script_here(capsys, path: Path, *args: str) -> subprocess.CompletedProcess:
    """A script run in this interpreter, for what its flags do rather than how it starts: the
    imports a fresh process pays (torch among them) are paid once per worker."""
    argv, sys.argv = sys.argv, [str(path), *args]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_code(exit_)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return subprocess.CompletedProcess([str(path), *args], code, captured.out, captured.err)


def copy_of(store: LocalStore, folder: Path) -> LocalStore:
    """A private copy of a local store, for a test that changes it."""
    shutil.copytree(store.root, folder)
    return LocalStore(folder)


def main_here(capsys, *args: str) -> subprocess.CompletedProcess:
    """``trader-ml ARGS`` run in this interpreter (usage errors included), for what a command
    does and says rather than how its process starts."""
    from trader_ml.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_code(exit_)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["trader-ml", *args], code, captured.out, captured.err)


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto in server mode, a separate process speaking real HTTP on 127.0.0.1."""
    port = _free_port()
    env = {**os.environ, **FAKE_AWS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch, moto_endpoint):
    """Fake credentials and the endpoint in the environment, as a user's shell would have them."""
    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def bucket(aws_env):
    """A fresh bucket on the moto server."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(bucket, aws_env) -> S3Store:
    return S3Store(f"s3://{bucket}/prefix", region="us-east-1", endpoint_url=aws_env)


@pytest.fixture
def local_store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=["local", "s3"])
def any_store(request):
    """Each test using this runs once on a local directory and once on S3 (moto)."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture(scope="session")
def small_synthetic() -> SyntheticSource:
    return SyntheticSource(SyntheticParams(seed=7, n_symbols=6))


def store_snapshot(store) -> dict:
    """Every key and its bytes (on S3: its ETag, the MD5 of its bytes, and size, from the
    listing alone): two equal snapshots mean the store did not change."""
    if isinstance(store, S3Store):
        pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=store.prefix)
        return {o["Key"]: (o["ETag"], o["Size"]) for page in pages for o in page.get("Contents", [])}
    keys = store.list("")
    return dict(zip(keys, store.read_many(keys), strict=True))


@pytest.fixture(scope="session")
def synthetic_context():
    """About five years of synthetic context rows and the true regime of each row."""
    from trader_ml.data.features import context_rows

    raw = SyntheticSource(SyntheticParams(seed=3, n_symbols=2)).fetch(dt.date(2005, 1, 1), dt.date(2009, 12, 31))
    context = context_rows(raw)
    truth = raw.truth_regime.reindex(context["date"]).to_numpy()
    return context, truth


@pytest.fixture(scope="session")
def spy_only_context(synthetic_context):
    """The same days with only SPY's columns, as the bundled sample has them."""
    context = synthetic_context[0].copy()
    context[["yield_slope", "credit_spread_proxy", "vixy_return_21d", "risk_off_proxy", "gdelt_avg_tone"]] = float(
        "nan"
    )
    return context


@pytest.fixture(scope="session")
def synthetic_features():
    """About two years of feature rows for 12 synthetic stocks, and each row's hidden state
    (2 healthy, 1 neutral, 0 distressed)."""
    from trader_ml.data.features import feature_rows

    raw = SyntheticSource(SyntheticParams(seed=4, n_symbols=12)).fetch(dt.date(2005, 1, 1), dt.date(2006, 12, 31))
    features, _ = feature_rows(raw, since=None)
    states = raw.truth_health.stack().rename("state").reset_index()
    states.columns = ["date", "symbol", "state"]
    merged = features[["date", "symbol"]].merge(states, on=["date", "symbol"], how="left")
    return features, 2.0 - merged["state"].to_numpy(dtype=float)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, worker_id) -> LocalStore:
    """A store with 18 months of synthetic data and a promoted version (1 epoch: fast, not good).

    Built once per run: the first worker to ask builds it under a lock, and every worker copies
    it, so no test sees another worker's changes (a build takes 12 s; seven modules ask)."""
    from filelock import FileLock

    # Under xdist each worker's base folder sits in the run's own folder; alone, the base is it.
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if worker_id != "master" else shared
    built = shared / "trained-store"
    with FileLock(str(shared / "trained-store.lock")):
        if not (built / "complete").exists():
            shutil.rmtree(built, ignore_errors=True)  # a build another worker did not finish
            _build_trained_store(built / "store", built / "out")
            (built / "complete").touch()
    return copy_of(LocalStore(built / "store"), tmp_path_factory.mktemp("served") / "store")


def _build_trained_store(folder: Path, output_dir: Path) -> None:
    from trader_ml.data.ingest import ingest
    from trader_ml.release.job import TrainOptions, run_training

    store = LocalStore(folder)
    ingest(
        SyntheticSource(SyntheticParams(seed=11, n_symbols=8)),
        store,
        dt.date(2007, 1, 1),
        dt.date(2008, 6, 30),
        today=TODAY,
        log=lambda _: None,
    )
    options = TrainOptions(
        store=store.url, max_days=600, epochs=1, force=True, progress=False, output_dir=str(output_dir)
    )
    run_training(options, log=lambda _: None)
