"""backtest.cluster: refits as Ray tasks on a local head (127.0.0.1 only) give the local numbers."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from trader_ml.backtest import BacktestConfig, run_backtest

from .conftest import _free_port
from .test_backtest import QUIET, fresh_copy, history  # noqa: F401  (the shared fixture)

RAY = Path(sys.executable).with_name("ray")
# Ray swaps 127.0.0.1 for the machine's own address unless told it is not forming a cluster
# across machines; with this every Ray process binds the loopback interface only.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def ray_head():
    port = _free_port()
    temp = f"/tmp/ray-{uuid.uuid4().hex[:8]}"  # Ray's socket paths must stay short
    env = {**os.environ, **LOOPBACK}
    start = [str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2"]
    start += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_and_local_give_identical_numbers(ray_head, history, tmp_path):  # noqa: F811
    address, env = ray_head
    settings = {"start": dt.date(2003, 1, 1), "refit": "quarterly", "end": dt.date(2003, 6, 30), "epochs": 2}
    local = run_backtest(BacktestConfig(**settings, workers=1), fresh_copy(history, tmp_path / "local"), **QUIET)
    clustered = fresh_copy(history, tmp_path / "ray")
    command = [sys.executable, "-m", "trader_ml", "backtest", "--store", clustered.url, "--quiet", "--ray", address]
    command += ["--start", "2003-01-01", "--end", "2003-06-30", "--refit", "quarterly", "--epochs", "2"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (key,) = [k for k in clustered.list("backtests/regime") if k.endswith("summary.json")]
    remote = json.loads(clustered.read(key))
    assert remote["timing"]["refits_fitted"] == local.refits_fitted == 2
    for name, row in local.summary["rows"].items():
        assert remote["rows"][name]["performance"] == pytest.approx(row["performance"], rel=1e-12), name
    assert [s["seeds"][0]["epochs_run"] for s in remote["refits"]] == [2, 2]
