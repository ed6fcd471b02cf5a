"""training.commands: the seed's single-model scripts, run as a user runs them."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trader_ml.data.ingest import ingest
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.serving.artifacts import RegimeModel
from trader_ml.store import LocalStore

from .conftest import TODAY, script_here

ROOT = Path(__file__).resolve().parents[1]


def script(name: str, *args: str, code: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "training" / name), *args]
    if code is not None:  # run the script after some setup code, in the same interpreter
        command = [
            sys.executable,
            "-c",
            f"{code}\nimport runpy, sys\nsys.argv = {command[1:]!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')",
        ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ}, cwd=cwd)


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    store = LocalStore(tmp_path_factory.mktemp("syn"))
    source = SyntheticSource(SyntheticParams(seed=5, n_symbols=8))
    ingest(source, store, dt.date(2006, 1, 1), dt.date(2008, 12, 31), today=TODAY, log=lambda _: None)
    return store


def test_train_regime_script_writes_onnx_and_metrics(synthetic_store, tmp_path, capsys):
    """In this interpreter (the health script below runs in a fresh process, as a user runs it)."""
    out = tmp_path / "models" / "regime.pkl"
    args = ["--store", synthetic_store.url, "--output", str(out), "--epochs", "2", "--quiet"]
    result = script_here(capsys, ROOT / "training" / "train_regime.py", *args)
    assert result.returncode == 0, result.stderr
    assert "writing" in result.stdout and "model_vs_truth" in result.stdout
    onnx_path = out.with_suffix(".onnx")
    assert not out.exists() and onnx_path.exists()
    metrics = json.loads(onnx_path.with_name("regime.metrics.json").read_text())
    assert {"model", "baseline", "model_vs_truth", "history", "metadata"} <= set(metrics)
    assert RegimeModel.from_bytes(onnx_path.read_bytes()).lookback == 63


def test_empty_store_says_how_to_ingest(tmp_path, capsys):
    (tmp_path / "empty").mkdir()  # a store that exists but holds nothing (a missing one is a typo: test_cli_messages)
    args = ["--store", str(tmp_path / "empty"), "--output", str(tmp_path / "m.onnx")]
    result = script_here(capsys, ROOT / "training" / "train_regime.py", *args)
    assert result.returncode == 2
    assert "No historical data found" in result.stderr and "trader-ml ingest --source sample" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_torch_says_which_extra(synthetic_store, tmp_path):
    result = script(
        "train_regime.py",
        "--store",
        synthetic_store.url,
        "--output",
        str(tmp_path / "m.onnx"),
        code="import sys; sys.modules['torch'] = None",
    )
    assert result.returncode == 2, result.stderr
    assert "No module named 'torch'" in result.stderr and "pip install 'trader-ml[train]'" in result.stderr


def test_train_health_script_writes_onnx_metrics_and_progress_lines_without_a_terminal(synthetic_store, tmp_path):
    """One fresh process, as a user runs it from their own folder: a relative output path."""
    args = ["--store", synthetic_store.url, "--output", "models/health.pkl", "--epochs", "2", "--model-type", "vae"]
    result = script("train_health.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "health vae: epoch 1/2 train_loss" in result.stderr  # stderr is a pipe here, not a terminal
    out = tmp_path / "models" / "health.onnx"
    assert f"wrote {out}" in result.stdout
    assert "truth_correlation" in result.stdout and "skipped" in result.stdout
    metrics = json.loads(out.with_name("health.metrics.json").read_text())
    assert metrics["metadata"]["model_config"]["model_type"] == "vae"
    from trader_ml.serving.artifacts import HealthModel

    assert HealthModel.from_bytes(out.read_bytes()).vol_boundaries == tuple(metrics["metadata"]["vol_boundaries"])


def test_until_trains_on_rows_strictly_before_it_and_metrics_record_the_fit(synthetic_store, tmp_path, capsys):
    out = tmp_path / "regime.onnx"
    args = ["--store", synthetic_store.url, "--output", str(out), "--epochs", "2", "--quiet", "--until", "2008-07-01"]
    result = script_here(capsys, ROOT / "training" / "train_regime.py", *args)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.with_name("regime.metrics.json").read_text())
    assert metrics["metadata"]["data_window"]["last_date"] == "2008-06-30"
    assert metrics["fit"]["epochs_run"] == 2 and 1 <= metrics["fit"]["best_epoch"] <= 2
    assert metrics["fit"]["seconds"] > 0
    windowed = script_here(
        capsys,
        ROOT / "training" / "train_health.py",
        "--store",
        synthetic_store.url,
        "--output",
        str(tmp_path / "h.onnx"),
        "--epochs",
        "1",
        "--quiet",
        "--start",
        "2007-01-01",
        "--until",
        "2008-07-01",
    )
    assert windowed.returncode == 0, windowed.stderr
    health = json.loads((tmp_path / "h.metrics.json").read_text())["metadata"]["data_window"]
    assert (health["first_date"], health["last_date"]) == ("2007-01-01", "2008-06-30")
    empty = script_here(
        capsys,
        ROOT / "training" / "train_regime.py",
        "--store",
        synthetic_store.url,
        "--until",
        "2001-01-01",
        "--output",
        str(out),
    )
    assert empty.returncode == 2 and "no context rows before 2001-01-01" in empty.stderr


def test_wrappers_speak_of_themselves_and_show_their_defaults():
    help_text = script("train.py", "--help").stdout
    assert help_text.startswith("usage: training/train.py") and "trader-ml" not in help_text.split("options:")[0]
    assert "investment-system-data" in help_text and "us-east-1" in help_text and "boto3" not in help_text
    typo = script("train_regime.py", "--max-day", "10")
    assert typo.returncode == 2 and "training/train_regime.py: error: unrecognized arguments: --max-day" in typo.stderr
