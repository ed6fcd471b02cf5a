"""backtest.cluster: refits as Ray tasks on a local head (127.0.0.1 only) give the local numbers."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from trader_ml.backtest import BacktestConfig, run_backtest
from trader_ml.cli import main

from .conftest import _free_port
from .test_backtest import QUIET, fresh_copy, history  # noqa: F401  (the shared fixture)

RAY = Path(sys.executable).with_name("ray")
# Ray swaps 127.0.0.1 for the machine's own address unless told it is not forming a cluster
# across machines; with this every Ray process binds the loopback interface only.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def ray_head():
    """A head node in its own process group: ``--block`` keeps ``ray start`` in the foreground
    with the head's processes as its children, so killing the group stops all of them at once
    (``ray stop`` takes seconds to do the same)."""
    port = _free_port()
    temp = f"/tmp/ray-{uuid.uuid4().hex[:8]}"  # Ray's socket paths must stay short
    start = [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"]
    start += ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    head = subprocess.Popen(
        start,
        env={**os.environ, **LOOPBACK},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        seen = []
        for line in head.stdout:  # the head is up once it says so; it blocks after that
            seen.append(line)
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail("ray start --head exited before the head was up:\n" + "".join(seen[-20:]))
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(30)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_and_local_give_identical_numbers(ray_head, history, tmp_path, monkeypatch):  # noqa: F811
    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    settings = {"start": dt.date(2003, 1, 1), "refit": "quarterly", "end": dt.date(2003, 6, 30), "epochs": 2}
    local = run_backtest(BacktestConfig(**settings, workers=1), fresh_copy(history, tmp_path / "local"), **QUIET)
    clustered = fresh_copy(history, tmp_path / "ray")
    command = ["backtest", "--store", clustered.url, "--quiet", "--ray", ray_head]
    command += ["--start", "2003-01-01", "--end", "2003-06-30", "--refit", "quarterly", "--epochs", "2"]
    assert main(command) == 0
    (key,) = [k for k in clustered.list("backtests/regime") if k.endswith("summary.json")]
    remote = json.loads(clustered.read(key))
    assert remote["timing"]["refits_fitted"] == local.refits_fitted == 2
    for name, row in local.summary["rows"].items():
        assert remote["rows"][name]["performance"] == pytest.approx(row["performance"], rel=1e-12), name
    assert [s["seeds"][0]["epochs_run"] for s in remote["refits"]] == [2, 2]
