"""cli: what a new user reads in their second hour: usages, typos, wrong files, help, next steps."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trader_ml import registry
from trader_ml.cli import build_parser, main

from .conftest import copy_of, main_here, script_here
from .test_cli import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[1]


def test_a_misspelt_flag_shows_the_commands_own_usage_and_the_nearest_flag(tmp_path):
    result = run("train", "--epoch", "5")
    assert result.returncode == 2 and "usage: trader-ml train " in result.stderr
    assert "COMMAND" not in result.stderr and "did you mean --epochs?" in result.stderr
    script = subprocess.run(
        [sys.executable, str(ROOT / "training" / "train.py"), "--skip-uplaod"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 2 and "usage: training/train.py [-h]" in script.stderr
    assert "COMMAND" not in script.stderr and "did you mean --skip-upload?" in script.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["train"],
        ["train-regime"],
        ["models", "list"],
        ["models", "rollback"],
        ["predict"],
        ["report"],
        ["backtest", "--model", "regime"],
        ["validate"],
        ["export", "--table", "context", "--out", "x.parquet"],
    ],
)
def test_a_store_folder_that_does_not_exist_is_one_clear_error_everywhere(tmp_path, args, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--store", str(tmp_path / "stor")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no store at {tmp_path / 'stor'}: the folder does not exist" in err[0]
    assert not (tmp_path / "stor").exists()


def test_a_csv_given_as_data_says_what_it_is_and_where_to_go(tmp_path):
    prices = tmp_path / "prices.csv"
    prices.write_text("Date,SPY,AAPL\n2020-01-02,300,75\n")
    from trader_ml.data.partitions import read_file
    from trader_ml.errors import ValidationError

    with pytest.raises(
        ValidationError, match=r"not a parquet file \(it reads as CSV text\).*--source csv.*trader-ml export"
    ):
        read_file(str(prices), "context")


def test_the_other_table_names_the_script_that_reads_it(trained_store, tmp_path, capsys):
    out = tmp_path / "context.parquet"
    assert main(["export", "--store", trained_store.url, "--table", "context", "--out", str(out)]) == 0
    result = script_here(capsys, ROOT / "training" / "train_health.py", "--data", str(out))
    assert_one_line_error(result, "holds context rows", "train_regime.py")


def test_every_option_says_what_it_does():
    """No flag's help is empty or only its default."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    bare = []
    for name, sub in commands.items():
        for action in sub._actions:
            text = re.sub(r"\(default: [^)]*\)", "", action.help or "").strip()
            if action.option_strings and action.dest != "help" and not text:
                bare.append(f"{name} {action.option_strings[0]}")
    assert not bare, bare


def test_train_py_help_shows_the_wrappers_own_store_default():
    result = subprocess.run(
        [sys.executable, str(ROOT / "training" / "train.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    store_help = re.search(r"--store STORE\s+(.*?)\n\s+--bucket", result.stdout, re.S).group(1)
    assert "s3://investment-system-data" in store_help and "./store" not in store_help


def test_the_readme_and_quickstart_show_export():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^\| `trader-ml export` \|", readme, re.M)
    assert "trader-ml export" in (ROOT / "docs" / "quickstart.md").read_text()


def test_predict_before_any_training_says_to_train(trained_store, tmp_path):
    shutil.copytree(trained_store.root, tmp_path / "s")
    (tmp_path / "s" / "models" / "latest.json").unlink()
    result = run("predict", "--store", str(tmp_path / "s"))
    assert result.returncode == 0 and "train one with trader-ml train --store" in result.stderr


def test_the_guides_test_command_needs_only_what_the_guide_installs():
    """The guide installs requirements-training.txt, pytest and torch, then runs
    tests/test_ml_models.py: neither it nor conftest.py may import what only the dev extra brings."""
    import ast

    dev_only = {"hypothesis", "moto", "cfn_lint", "websocket", "ray", "ruff"}
    for path in (ROOT / "tests" / "test_ml_models.py", ROOT / "tests" / "conftest.py"):
        tree = ast.parse(path.read_text())
        top = {n.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
        top |= {
            node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not top & dev_only, (path.name, top & dev_only)


def test_no_such_bucket_says_how_to_create_it(aws_env, tmp_path):
    result = run("ingest", "--source", "synthetic", "--store", "s3://no-such-bucket-here", "--start", "2020-01-02")
    assert_one_line_error(result, "no such bucket no-such-bucket-here", "aws s3 mb s3://no-such-bucket-here")


def test_models_add_registers_a_single_model_file_and_serves_it(trained_store, tmp_path, capsys):
    from trader_ml.serving.daily import load_day
    from trader_ml.serving.predictor import Predictor

    store = copy_of(trained_store, tmp_path / "s")
    before = registry.read_latest(store)[0]
    file = tmp_path / "health_model.onnx"
    file.write_bytes(store.read(before["health_model"]))  # what train-health writes: an ONNX file
    assert main(["models", "add", str(file), "--store", store.url, "--promote"]) == 0
    after = registry.read_latest(store)[0]
    added = registry.model_version(after, "health")
    assert added != before["version"] and registry.model_version(after, "regime") == before["version"]
    health, _, _ = Predictor(store).predict_health(load_day(store).feature_rows)
    assert {a["model_version"] for a in health.values()} == {added}
    assert main(["models", "list", "--store", store.url]) == 0
    assert re.search(rf"^health\s+{re.escape(added)}\s", capsys.readouterr().out, re.M)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["models", "add", str(tmp_path / "junk.onnx"), "--store", store.url]) == 2
    assert "not a loadable ONNX model" in capsys.readouterr().err
    assert registry.read_latest(store)[0] == after  # nothing moved


def test_models_add_records_an_input_profile_only_from_the_table_given(trained_store, tmp_path, capsys):
    """Without the table the model trained on, add says drift cannot be checked and monitor says
    the same; with it (--data), the profile is recorded and monitor checks drift."""
    store = copy_of(trained_store, tmp_path / "s")
    file = tmp_path / "health_model.onnx"
    file.write_bytes(store.read(registry.read_latest(store)[0]["health_model"]))
    assert main(["models", "add", str(file), "--store", store.url, "--promote"]) == 0
    assert "monitor cannot check drift for version" in capsys.readouterr().out
    assert main(["monitor", "--store", store.url, "--no-write"]) == 0
    assert "drift (health inputs): drift cannot be checked: version" in capsys.readouterr().out
    table = tmp_path / "features.parquet"
    assert main(["export", "--store", store.url, "--table", "features", "--out", str(table)]) == 0
    assert main(["models", "add", str(file), "--store", store.url, "--promote", "--data", str(table)]) == 0
    added = registry.model_version(registry.read_latest(store)[0], "health")
    profile = registry.read_manifest(store, added)["input_profile"]["health"]
    assert set(profile) >= {"vol_21d", "return_1d"} and profile["vol_21d"]["range"] is not None
    capsys.readouterr()
    assert main(["monitor", "--store", store.url, "--no-write"]) == 0
    assert re.search(r"^drift \(health inputs, last \d+ days\)", capsys.readouterr().out, re.M)


def test_promoting_a_model_whose_gate_failed_needs_force_and_rollback_never_says_none(trained_store, tmp_path, capsys):
    store = copy_of(trained_store, tmp_path / "s")
    version = registry.read_latest(store)[0]["version"]
    key = registry.manifest_key(version)
    manifest = json.loads(store.read(key))
    manifest["gate"]["gate_passed"].update(regime=True, health=False)
    manifest["gate"]["forced"] = False  # published, held back by its gate
    manifest["gate"]["health"] = {**manifest["gate"].get("health", {}), "reason": "does not beat the base rate"}
    store.write(key, json.dumps(manifest).encode())
    before = store.read("models/latest.json")
    result = main_here(capsys, "models", "promote", version, "--store", store.url)
    assert result.returncode == 2 and "the gate of" in result.stderr and "--force" in result.stderr
    assert "health: does not beat the base rate" in result.stderr and store.read("models/latest.json") == before
    result = main_here(capsys, "models", "promote", version, "--store", store.url, "--force")
    assert result.returncode == 0 and "warning: promoting health" in result.stderr
    result = main_here(capsys, "models", "promote", version, "--model", "regime", "--store", store.url)
    assert result.returncode == 0 and result.stderr == ""  # only the model named is judged
    manifest["gate"]["forced"] = True  # made current by train --force: promoting again repeats that
    store.write(key, json.dumps(manifest).encode())
    result = main_here(capsys, "models", "promote", version, "--store", store.url)
    assert result.returncode == 0 and "warning: promoting health" in result.stderr
    for _ in range(3):
        result = main_here(capsys, "models", "rollback", "--store", store.url)
        assert "None" not in result.stdout + result.stderr


def test_train_with_the_single_model_flag_suggests_the_one_it_meant(capsys):
    result = main_here(capsys, "train", "--model-type", "transformer")
    assert result.returncode == 2 and "did you mean --regime-type transformer?" in result.stderr
    result = main_here(capsys, "train", "--model-type=vae")
    assert "did you mean --health-type vae?" in result.stderr


def test_monitor_on_a_store_without_a_trained_version_says_so(tmp_path, capsys):
    assert (
        main_here(
            capsys,
            "ingest",
            "--source",
            "synthetic",
            "--n-symbols",
            "5",
            "--start",
            "2020-01-02",
            "--end",
            "2020-04-30",
            "--store",
            str(tmp_path / "s"),
        ).returncode
        == 0
    )
    result = main_here(capsys, "monitor", "--store", str(tmp_path / "s"), "--no-write")
    assert result.returncode == 0
    assert "drift (regime inputs): no trained regime model serves in this store" in result.stdout
    assert "train one: trader-ml train --store" in result.stdout


def test_latest_json_keeps_the_guides_health_keys_when_the_baseline_serves():
    manifest = {
        "version": "20260130",
        "timestamp": "2026-01-30T10:00:00Z",
        "regime_model": "models/regime_v20260130.onnx",
        "regime_sha256": "0" * 64,
        "regime_metrics": {"test_accuracy": 0.5, "test_f1_macro": 0.4, "model_type": "gru"},
        "baseline_metrics": {"regime": {}, "health": {"test_health_correlation": 0.1}},
        "data_window": {},
        "package_version": "x",
    }
    pointer = registry.pointer_for(manifest, None, ("regime",))
    assert list(pointer["health_metrics"])[:3] == ["test_recon_mse", "test_health_correlation", "model_type"]
    assert pointer["health_metrics"]["test_recon_mse"] is None and pointer["health_model"] is None
    assert pointer["health_metrics"]["model_type"] == "baseline"
