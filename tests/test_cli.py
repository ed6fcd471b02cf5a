"""cli: the commands as a user types them: the entry point, its exit codes and a command's
whole output in a fresh process; what each command does and says in the test's interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from trader_ml.data.partitions import read_table
from trader_ml.store import S3Store

from .conftest import main_here


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trader_ml", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.fixture
def here(capsys):
    """A command in this interpreter: what it does and says, without a fresh process's imports."""
    return lambda *args: main_here(capsys, *args)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_version_and_help():
    assert run("--version").stdout.startswith("trader-ml ")
    assert "ingest" in run("--help").stdout
    for command in ("train", "train-regime", "train-health"):
        text = run(command, "--help").stdout
        assert "training guide's" in text and "seed's" not in text


def test_ingest_synthetic_then_validate(tmp_path):
    store = str(tmp_path / "store")
    result = run(
        "ingest",
        "--source",
        "synthetic",
        "--n-symbols",
        "3",
        "--start",
        "2003-01-01",
        "--end",
        "2003-02-28",
        "--store",
        store,
    )
    assert result.returncode == 0, result.stderr
    assert "ingested 43 trading days 2003-01-01 .. 2003-02-28 from synthetic" in result.stdout
    result = run("validate", "--store", store)
    assert result.returncode == 0 and "features: ok, 129 rows over 43 days" in result.stdout


def test_bad_price_file_is_one_line_and_nothing_written(tmp_path):
    bad = tmp_path / "prices.csv"
    bad.write_text("Date,SPY,AAA\n2024-01-02,470,10\n2024-01-02,471,11\n")
    store = tmp_path / "store"
    result = run("ingest", "--source", "csv", "--prices", str(bad), "--store", str(store))
    assert_one_line_error(result, "trader-ml ingest: error:", "prices.csv: line 3: duplicate date 2024-01-02")
    assert not store.exists()


def test_validate_names_file_column_and_row(tmp_path, here):
    frame = pd.DataFrame({"date": pd.to_datetime(["2024-01-02", "2024-01-03"]), "symbol": ["A", "A"]})
    for col in [
        "return_1d",
        "return_5d",
        "return_21d",
        "return_63d",
        "vol_21d",
        "vol_63d",
        "drawdown_21d",
        "drawdown_63d",
        "rel_strength_21d",
        "rel_strength_63d",
    ]:
        frame[col] = [0.1, 0.2]
    frame.loc[1, "vol_21d"] = np.inf
    path = tmp_path / "features.parquet"
    frame.to_parquet(path)
    result = here("validate", str(path), "--kind", "features")
    assert_one_line_error(result, f"{path}, row 1 (date 2024-01-03, symbol A): column vol_21d: infinite value")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"nope")
    assert_one_line_error(here("validate", str(garbage)), f"{garbage}: unreadable parquet")


def test_bad_flags_are_usage_errors(tmp_path, here):
    result = here("ingest", "--start", "2024-13-01", "--store", str(tmp_path))
    assert result.returncode == 2 and "invalid date '2024-13-01'" in result.stderr
    result = here("ingest", "--source", "nasdaq", "--store", str(tmp_path))
    assert_one_line_error(result, "unknown source 'nasdaq'")
    result = here("ingest", "--source", "yahoo", "--store", str(tmp_path))
    assert_one_line_error(result, "needs --symbols")


def test_ingest_into_s3_through_the_environment(bucket, aws_env):
    env = {"AWS_ENDPOINT_URL": aws_env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    result = run(
        "ingest",
        "--source",
        "synthetic",
        "--n-symbols",
        "2",
        "--start",
        "2003-01-01",
        "--end",
        "2003-01-31",
        "--store",
        f"s3://{bucket}/market",
        "--region",
        "us-east-1",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    store = S3Store(f"s3://{bucket}/market", region="us-east-1", endpoint_url=aws_env)
    assert len(read_table(store, "context")) == 23


def test_prefixes_of_flags_are_typos(tmp_path, here):
    result = here("validate", "--stor", str(tmp_path))
    assert result.returncode == 2 and "unrecognized arguments: --stor" in result.stderr
    result = here("train", "--max-day", "10", "--store", str(tmp_path))
    assert result.returncode == 2 and "unrecognized arguments: --max-day" in result.stderr


def test_validate_refuses_a_missing_or_empty_store(tmp_path, here):
    assert_one_line_error(here("validate", "--store", str(tmp_path / "no" / "such")), "no store at", "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(here("validate", "--store", str(tmp_path / "empty")), "holds no context partitions", "ingest")


def test_export_then_train_from_the_file_or_the_partition_folder(tmp_path, here):
    store = tmp_path / "store"
    ingest = here(
        "ingest",
        "--source",
        "synthetic",
        "--n-symbols",
        "6",
        "--start",
        "2003-01-01",
        "--end",
        "2004-06-30",
        "--store",
        str(store),
    )
    assert ingest.returncode == 0, ingest.stderr
    out = tmp_path / "features.parquet"
    result = here("export", "--store", str(store), "--table", "features", "--out", str(out), "--start", "2003-06-01")
    assert result.returncode == 0, result.stderr
    exported = pd.read_parquet(out)
    assert exported["date"].min() >= pd.Timestamp("2003-06-01") and exported["symbol"].nunique() == 6
    assert_one_line_error(
        here("export", "--store", str(store), "--table", "features", "--out", str(out)), "exists already"
    )
    detected = here("validate", str(out))  # no --kind: the symbol column says features
    assert detected.returncode == 0 and "ok," in detected.stdout and "features rows" in detected.stdout
    folder = here("validate", str(store / "data" / "context"), "--kind", "context")
    assert folder.returncode == 0 and "context rows" in folder.stdout, folder.stderr
    trained = here(
        "train-regime",
        "--data",
        str(store / "data" / "context"),
        "--epochs",
        "1",
        "--quiet",
        "--output",
        str(tmp_path / "regime.onnx"),
    )
    assert trained.returncode == 0, trained.stderr


def test_flag_defaults_are_the_configs_defaults():
    """Each default is the dataclass's: a flag whose default drifts from the config it fills fails here."""
    from trader_ml.backtest.config import BacktestConfig
    from trader_ml.cli import build_parser
    from trader_ml.training.health import health_train_config
    from trader_ml.training.loop import FitConfig
    from trader_ml.training.options import TrainOptions
    from trader_ml.training.regime import regime_train_config

    parser = build_parser()
    train, options = parser.parse_args(["train"]), TrainOptions()
    for name in ("max_days", "regime_max_days", "regime_type", "health_type", "epochs", "output_dir", "force"):
        assert getattr(train, name) == getattr(options, name), name
    for name in ("tolerance", "device", "seed", "skip_upload"):
        assert getattr(train, name) == getattr(options, name), name
    regime, health = regime_train_config(), health_train_config()
    assert (options.regime_batch_size, options.health_batch_size) == (regime.fit.batch_size, health.fit.batch_size)
    assert options.epochs == FitConfig.epochs and options.regime_type == regime.model.model_type
    assert options.health_type == health.model.model_type
    for command, config in (("train-regime", regime), ("train-health", health)):
        args = parser.parse_args([command])
        assert (args.epochs, args.batch_size, args.seed, args.device) == (
            config.fit.epochs,
            config.fit.batch_size,
            config.fit.seed,
            config.fit.device,
        ), command
        assert args.model_type == config.model.model_type, command
    assert parser.parse_args(["train-regime"]).label_horizon == regime.label_horizon
    backtest, config = parser.parse_args(["backtest"]), BacktestConfig()
    for name in ("model", "refit", "epochs", "seeds", "cost_bp", "window_days", "workers"):
        assert getattr(backtest, name) == getattr(config, name), f"backtest {name}"


def test_every_flag_default_of_every_command_has_one_home():
    """A flag's default is read from the config or constant it fills, never typed again in the
    parser: each one here is listed with its home, and a default not listed fails."""
    import argparse

    from trader_ml.backtest.config import BacktestConfig
    from trader_ml.cli import build_parser
    from trader_ml.cli.args import DEFAULT_STORE
    from trader_ml.data.sources import SourceOptions
    from trader_ml.data.sources.synthetic import SyntheticParams
    from trader_ml.release.bundle import ARCHES, DEFAULT_OUTPUT, RUNTIMES, build_bundle
    from trader_ml.training.options import TrainOptions

    options, backtest = TrainOptions(), BacktestConfig()
    homes = {
        ("ingest", "seed"): SourceOptions.seed,
        ("ingest", "n_symbols"): SourceOptions.n_symbols,
        ("ingest", "market"): SourceOptions.market,
        ("ingest", "source"): "sample",  # the guide's first command ingests the bundled sample
        ("train-regime", "output"): "models/regime_model.pkl",  # the guide's paths
        ("train-health", "output"): "models/health_model.pkl",
        ("train-regime", "label_horizon"): options.regime_label_horizon,
        ("train-regime", "batch_size"): options.regime_batch_size,
        ("train-health", "batch_size"): options.health_batch_size,
        ("train-regime", "model_type"): options.regime_type,
        ("train-health", "model_type"): options.health_type,
        ("lambda-bundle", "output"): DEFAULT_OUTPUT,
        ("lambda-bundle", "arch"): next(iter(ARCHES)),
        ("lambda-bundle", "python"): RUNTIMES[0],
    }
    # daily takes ingest's flags through the same function (cli.data.add_source_args)
    homes |= {("daily", name): value for (command, name), value in list(homes.items()) if command == "ingest"}
    for command in ("train-regime", "train-health"):
        homes |= {(command, name): getattr(options, name) for name in ("epochs", "seed", "device")}
    homes |= {("train", name): getattr(options, name) for name in vars(options)}
    homes |= {("backtest", name): getattr(backtest, name) for name in vars(backtest)}
    assert (SyntheticParams().seed, SyntheticParams().n_symbols) == (SourceOptions.seed, SourceOptions.n_symbols)
    assert build_bundle.__defaults__[:3] == (DEFAULT_OUTPUT, next(iter(ARCHES)), RUNTIMES[0])
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    unhomed = []
    for command, parser in subparsers.choices.items():
        for action in parser._actions:
            default = action.default
            if action.dest == "help" or default is None or default is False or default is argparse.SUPPRESS:
                continue
            if action.dest == "store":
                assert default == DEFAULT_STORE, command
            elif (command, action.dest) not in homes:
                unhomed.append(f"{command} --{action.dest} {default!r}")
            else:
                assert default == homes[command, action.dest], f"{command} --{action.dest}"
    assert unhomed == []


def _full_disk_for(prefixes: tuple[str, ...]):
    """LocalStore.write failing as on a full disk for keys under ``prefixes``."""
    from trader_ml.errors import StoreError
    from trader_ml.store import LocalStore

    real = LocalStore.write

    def write(self, key, data, durable=False):
        if key.startswith(prefixes):
            raise StoreError(f"cannot write {self.describe(key)}: No space left on device")
        return real(self, key, data, durable)

    return write


def test_predict_and_monitor_print_their_answer_when_the_write_fails(trained_store, tmp_path, capsys, monkeypatch):
    import json

    from .conftest import copy_of

    store = copy_of(trained_store, tmp_path / "store")
    monkeypatch.setattr("trader_ml.store.LocalStore.write", _full_disk_for(("predictions/", "monitoring/")))
    predicted = main_here(capsys, "predict", "--store", store.url, "--write")
    assert predicted.returncode == 2 and json.loads(predicted.stdout)["regime"]["regime_probs"]
    assert json.loads(predicted.stdout)["written"] == []
    assert "the answer above was not written" in predicted.stderr and "No space left" in predicted.stderr
    monitored = main_here(capsys, "monitor", "--store", store.url)
    assert monitored.returncode == 2 and "health verdict:" in monitored.stdout
    assert "the record above was not kept" in monitored.stderr


def test_a_half_published_version_is_named_not_listed_and_pruned(trained_store, tmp_path, capsys):
    from trader_ml import registry

    from .conftest import copy_of

    store = copy_of(trained_store, tmp_path / "store")
    version = registry.read_latest(store)[0]["version"]
    store.write("models/regime_v20990101.onnx", b"half")  # a publish that stopped before its manifest
    listed = main_here(capsys, "models", "list", "--store", store.url)
    assert listed.returncode == 0 and version in listed.stdout and "20990101" not in listed.stdout
    assert "version 20990101 was half published" in listed.stderr and "models prune" in listed.stderr
    pruned = main_here(capsys, "models", "prune", "--store", store.url)
    assert pruned.returncode == 0 and "removed half-published version 20990101" in pruned.stdout
    assert not store.exists("models/regime_v20990101.onnx") and registry.versions(store) == [version]
    again = main_here(capsys, "models", "list", "--store", store.url)
    assert again.returncode == 0 and again.stderr == ""


@pytest.mark.parametrize(
    ("cell", "said"),
    [
        ("9" * 3_000_000, "line 3 is over 1,048,576 bytes: not a price file"),  # a line past the cap: never parsed
        ("x" * 500_000, "line 3, column AAA: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (500,000 characters)"),
    ],
)
def test_a_huge_value_in_a_price_file_is_named_not_repeated(tmp_path, here, cell, said):
    bad = tmp_path / "prices.csv"
    bad.write_text(f"Date,SPY,AAA\n2024-01-02,470,10\n2024-01-03,471,{cell}\n")
    store = tmp_path / "store"
    result = here("ingest", "--source", "csv", "--prices", str(bad), "--store", str(store))
    assert result.returncode == 2 and said in result.stderr
    assert len(result.stderr) < 600 and not store.exists()
