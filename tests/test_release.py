"""release (job, judge, manifest): the seed's train.py end to end against moto's S3 server, and the gate."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from trader_ml import registry
from trader_ml.data.ingest import ingest
from trader_ml.data.sources.synthetic import SyntheticParams, SyntheticSource
from trader_ml.schema import LATEST_KEY
from trader_ml.store import LocalStore, S3Store
from trader_ml.training.gate import GateDecision

from .conftest import FAKE_AWS, TODAY, copy_of, main_here, script_here, store_snapshot

ROOT = Path(__file__).resolve().parents[1]
SOURCE = SyntheticSource(SyntheticParams(seed=9, n_symbols=6))


def fill(store, start: dt.date = dt.date(2007, 1, 1)) -> None:
    ingest(SOURCE, store, start, dt.date(2008, 6, 30), today=TODAY, log=lambda _: None)


@pytest.fixture(scope="module")
def market_bucket(moto_endpoint, tmp_path_factory):
    """One bucket of market data for this module's train.py runs, as a live source's ingest
    leaves it: a year (not the 18 months the local tests use) ingested locally and copied in one
    parallel batch without the simulator's truth tables, since moto answers only a few hundred
    writes a second (ingest to S3 itself is tested in test_ingest). The seed run comes first (it
    checks a first version); --skip-upload writes nothing to it."""
    import boto3

    name = f"market-{uuid.uuid4().hex[:12]}"
    local = LocalStore(tmp_path_factory.mktemp("market"))
    fill(local, start=dt.date(2007, 7, 1))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in FAKE_AWS.items():
            patch.setenv(key, value)
        boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
        bucket = S3Store(f"s3://{name}", region="us-east-1", endpoint_url=moto_endpoint)
        bucket.write_many((key, local.read(key)) for key in local.list("data/"))
    return name


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> LocalStore:
    """18 months of SOURCE's market, ingested once for the module's local runs."""
    store = LocalStore(tmp_path_factory.mktemp("filled"))
    fill(store)
    return store


@pytest.fixture
def filled_store(filled, tmp_path) -> LocalStore:
    """A copy of ``filled`` of the test's own."""
    return copy_of(filled, tmp_path / "filled")


@pytest.fixture(scope="module")
def trained_once(filled):
    """The candidate the gate tests' runs judge, trained once with their options on the same
    data: they check what the job does with a candidate (the networks' training is checked by
    the seed run above and by test_regime and test_health)."""
    from trader_ml.release import job

    options = job.TrainOptions(store=filled.url, max_days=600, epochs=1, progress=False)
    context, features = job.load_data(filled, options)
    return job.train_candidate(options, filled, context, features, lambda _: None)


def train_py(*args: str, endpoint: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **FAKE_AWS, "AWS_ENDPOINT_URL": endpoint}
    return subprocess.run(
        [sys.executable, str(ROOT / "training" / "train.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_seed_train_py_against_s3(market_bucket, aws_env, tmp_path):
    result = train_py(
        "--bucket",
        market_bucket,
        "--region",
        "us-east-1",
        "--max-days",
        "600",
        "--epochs",
        "2",
        "--output-dir",
        str(tmp_path / "out"),
        "--force",
        "--quiet",
        endpoint=aws_env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[6/6] publishing to s3://" in result.stdout and "promoted" in result.stdout
    store = S3Store(f"s3://{market_bucket}", region="us-east-1", endpoint_url=aws_env)
    latest = json.loads(store.read(LATEST_KEY))
    version = latest["version"]
    assert list(latest)[:6] == [
        "version",
        "timestamp",
        "regime_model",
        "health_model",
        "regime_metrics",
        "health_metrics",
    ]
    assert set(latest) == set(registry.SEED_KEYS) | {
        "regime_sha256",
        "health_sha256",
        "data_window",
        "package_version",
        "baseline_metrics",
        "previous_version",
        "history",
        "promoted_at",
    }
    assert re.fullmatch(r"\d{8}(-\d+)?", version) and version.startswith(dt.date.today().strftime("%Y%m%d"))
    assert dt.datetime.fromisoformat(latest["timestamp"])
    assert latest["regime_model"] == f"models/regime_v{version}.onnx"
    assert latest["health_model"] == f"models/health_v{version}.onnx"
    for kind in ("regime", "health"):
        assert latest[f"{kind}_sha256"] == hashlib.sha256(store.read(latest[f"{kind}_model"])).hexdigest()
    regime, health = latest["regime_metrics"], latest["health_metrics"]
    assert regime["model_type"] == "gru" and 0 <= regime["test_accuracy"] <= 1 and 0 <= regime["test_f1_macro"] <= 1
    assert health["model_type"] == "autoencoder" and health["test_recon_mse"] >= 0
    assert -1 <= health["test_health_correlation"] <= 1
    window = latest["data_window"]
    assert window["last_date"] == "2008-06-30" and window["symbols"] == 6 and window["rows"] > 250
    assert latest["package_version"] and latest["previous_version"] is None
    assert latest["history"] == [{"version": version, "regime": version, "health": version}]
    assert set(latest["baseline_metrics"]) == {"regime", "health"}
    local = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert local == [
        f"health_v{version}.onnx",
        f"manifest_v{version}.json",
        f"regime_v{version}.onnx",
        f"report_v{version}.html",
    ]
    assert store.exists(f"reports/v{version}/index.html")


def test_skip_upload_writes_only_the_output_dir(market_bucket, aws_env, tmp_path, capsys):
    store = S3Store(f"s3://{market_bucket}", region="us-east-1", endpoint_url=aws_env)
    before = store_snapshot(store)
    result = script_here(
        capsys,
        ROOT / "training" / "train.py",
        "--bucket",
        market_bucket,
        "--max-days",
        "600",
        "--epochs",
        "1",
        "--skip-upload",
        "--output-dir",
        str(tmp_path / "out"),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--skip-upload: nothing written to the store" in result.stdout
    assert store_snapshot(store) == before
    assert len(list((tmp_path / "out").glob("*.onnx"))) == 2


def overrule(monkeypatch, **promote: bool) -> None:
    """The one gate function's decision for each kind replaced by ``promote[kind]``, its checks
    kept as judged: what the job does with a verdict, whatever the models learned."""
    from trader_ml.release import judge

    real = judge.decide

    def decide(kind, *args, **kwargs) -> GateDecision:
        decision = real(kind, *args, **kwargs)
        return dataclasses.replace(decision, promote=promote[kind], reason=f"set by the test: {promote[kind]}")

    monkeypatch.setattr(judge, "decide", decide)


def test_gate_holds_back_unless_forced(filled_store, trained_once, tmp_path, monkeypatch):
    from trader_ml.release import job

    monkeypatch.setattr(job, "train_candidate", lambda *args: trained_once)
    overrule(monkeypatch, regime=False, health=False)  # both gates refuse, whatever the models learned
    options = job.TrainOptions(
        store=filled_store.url, max_days=600, epochs=1, output_dir=str(tmp_path / "o"), progress=False
    )
    lines: list[str] = []
    held = job.run_training(options, log=lines.append)
    assert held.promoted == () and registry.read_latest(filled_store) == (None, None)
    assert any("stored but not promoted" in line for line in lines)
    assert registry.read_manifest(filled_store, held.version)["gate"]["gate_passed"] == {
        "regime": False,
        "health": False,
    }
    forced = job.run_training(job.TrainOptions(**{**options.__dict__, "force": True}), log=lines.append)
    assert forced.promoted == ("regime", "health") and forced.version != held.version
    assert registry.read_latest(filled_store)[0]["version"] == forced.version
    assert registry.versions(filled_store) == [held.version, forced.version]
    gate = registry.read_manifest(filled_store, forced.version)["gate"]
    assert gate["forced"] and gate["gate_passed"] == {"regime": False, "health": False} and "promoted" not in gate


def test_a_model_that_passes_is_promoted_without_the_one_that_fails(filled_store, trained_once, tmp_path, monkeypatch):
    from trader_ml.release import job

    monkeypatch.setattr(job, "train_candidate", lambda *args: trained_once)
    overrule(monkeypatch, regime=False, health=True)
    options = job.TrainOptions(
        store=filled_store.url, max_days=600, epochs=1, output_dir=str(tmp_path / "o"), progress=False
    )
    lines: list[str] = []
    outcome = job.run_training(options, log=lines.append)
    pointer = registry.read_latest(filled_store)[0]
    assert outcome.promoted == ("health",)
    assert pointer["regime_model"] is None and pointer["regime_metrics"]["model_type"] == "baseline"
    assert registry.model_version(pointer, "health") == outcome.version
    assert any(f"now makes current: regime rule baseline, health {outcome.version}" in line for line in lines)
    assert registry.read_manifest(filled_store, outcome.version)["gate"]["gate_passed"] == {
        "regime": False,
        "health": True,
    }


def test_models_commands(local_store, tmp_path, capsys):
    from tests.test_registry import store_version

    v1, v2 = store_version(local_store, b"1"), store_version(local_store, b"2")

    def models(*args):
        return main_here(capsys, "models", *args, "--store", local_store.url)

    assert (
        f"promoted {v1} (regime and health); no earlier version in latest.json's history"
        in models("promote", v1).stdout
    )
    promoted = models("promote", v2, "--model", "health").stdout
    assert f"promoted {v2} (health); previous: {v1}" in promoted and f"current: regime {v1}, health {v2}" in promoted
    listing = models("list").stdout
    assert re.search(rf"^regime\s+{re.escape(v1)}\s", listing, re.M)
    assert re.search(rf"^health\s+{re.escape(v2)}\s", listing, re.M)
    assert f"current (models/latest.json): regime {v1}, health {v2}" in listing
    shown = json.loads(models("show", v1).stdout)
    assert shown["artifact_checks"] == {"regime": "sha256 ok", "health": "sha256 ok"}
    assert f"rolled back to {v1}" in models("rollback").stdout
    local_store.write(LATEST_KEY, b'{"trunc')
    broken = models("list")
    assert broken.returncode == 2 and "not valid JSON" in broken.stderr and len(broken.stderr.strip().splitlines()) == 1
    missing = models("show", "20990101")
    assert missing.returncode == 2 and "no version 20990101" in missing.stderr


def test_a_second_run_never_overwrites_local_outputs_and_names_say_the_version(tmp_path):
    from types import SimpleNamespace

    from trader_ml.release.outputs import write_outputs

    first = SimpleNamespace(regime_onnx=b"regime 1", health_onnx=b"health 1")
    second = SimpleNamespace(regime_onnx=b"regime 2", health_onnx=b"health 2")
    written = write_outputs(str(tmp_path), "20261127", first, {"version": "20261127"})
    (tmp_path / written[-1].name).write_text("report 1")
    again = write_outputs(str(tmp_path), "20261127", second, {"version": "20261127"})
    assert [p.name for p in again] == [  # the same names, which say the version, in a folder of their own
        "regime_v20261127.onnx",
        "health_v20261127.onnx",
        "manifest_v20261127.json",
        "report_v20261127.html",
    ]
    assert again[0].parent.parent == tmp_path and again[0].parent.name.startswith("run-")
    assert (tmp_path / "regime_v20261127.onnx").read_bytes() == b"regime 1"
    assert again[0].read_bytes() == b"regime 2"


def test_both_models_read_all_history_unless_limited(filled):
    """The regime model reads every stored context day by default and --max-days limits the
    features only; --regime-max-days limits the context the same way."""
    from trader_ml.cli import build_parser
    from trader_ml.release import job

    every = job.load_data(filled, job.TrainOptions(store=filled.url))
    context, features = job.load_data(filled, job.TrainOptions(store=filled.url, max_days=90))
    assert len(context) == len(every[0]) and len(every[1]) > len(features)
    assert features["date"].min() > context["date"].min() + dt.timedelta(days=300)
    limited, _ = job.load_data(filled, job.TrainOptions(store=filled.url, max_days=90, regime_max_days=90))
    assert limited["date"].min() == features["date"].min()
    args = build_parser().parse_args(["train", "--regime-max-days", "90"])
    assert (args.max_days, args.regime_max_days) == (None, 90)


def test_a_corrupt_champion_and_a_racer_for_the_name_are_both_told_truly(trained_store, tmp_path, monkeypatch):
    """The champion's regime artifact is damaged: the gate judges against the baseline (which is
    what serves) and every message says so, never "no champion yet". Meanwhile another run takes
    the planned version's name: the local copies carry the version the store published."""
    from trader_ml.release import job

    store = copy_of(trained_store, tmp_path / "store")
    champion = registry.read_latest(store)[0]
    store.write(champion["regime_model"], store.read(champion["regime_model"]) + b"\0")
    planned = next(registry.candidate_versions(store, TODAY))
    real_publish = registry.publish

    def raced(store_, day, artifacts, describe, log):
        store_.create(registry.artifact_key("health", planned), b"another run's model")
        return real_publish(store_, day, artifacts, describe, log)

    monkeypatch.setattr(job.registry, "publish", raced)
    lines: list[str] = []
    options = job.TrainOptions(
        store=store.url, max_days=600, epochs=1, force=True, today=TODAY, output_dir=str(tmp_path / "o"), progress=False
    )
    outcome = job.run_training(options, log=lines.append)
    text = "\n".join(lines)
    assert f"the champion regime model {champion['version']} cannot be evaluated" in text
    assert "no champion yet" not in text
    gate = registry.read_manifest(store, outcome.version)["gate"]
    assert gate["champion_versions"] == {"regime": None, "health": champion["version"]}
    assert "cannot be evaluated" in gate["champion_notes"]["regime"] and [
        c["against"] for c in gate["regime"]["checks"]
    ] == ["its rule baseline", "variance targeting alone", "variance targeting alone"]  # no champion check
    assert outcome.version != planned and f"{planned} was taken meanwhile" in text
    local = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert local == sorted(
        f"{kind}_v{outcome.version}.{ext}"
        for kind, ext in [("regime", "onnx"), ("health", "onnx"), ("manifest", "json"), ("report", "html")]
    )
    assert json.loads((tmp_path / "o" / f"manifest_v{outcome.version}.json").read_text())["version"] == outcome.version


def test_the_gate_says_why_it_had_no_champion():
    from trader_ml.training.gate import Comparison, decide, regime_checks

    beats = regime_checks(Comparison("m", 0.6, 0.4, 0.2, 0.1, 0.3), None, 0.02)
    assert decide("regime", beats, 30).reason.endswith("no champion yet")
    note = "the champion regime model 20260101 cannot be evaluated (sha256 mismatch)"
    decision = decide("regime", beats, 30, champion_note=note)
    assert decision.promote and decision.reason.endswith(note) and "no champion yet" not in decision.reason


def test_retraining_on_the_same_data_and_settings_publishes_nothing_unless_forced(trained_store, tmp_path):
    """The conftest store was trained with these options: the same rows and settings again would
    only make an identical version."""
    from trader_ml.release import job

    store = copy_of(trained_store, tmp_path / "store")
    before = store_snapshot(store)
    version = registry.read_latest(store)[0]["version"]
    options = job.TrainOptions(store=store.url, max_days=600, epochs=1, progress=False, output_dir=str(tmp_path / "o"))
    lines: list[str] = []
    outcome = job.run_training(options, log=lines.append)
    assert outcome.version is None and store_snapshot(store) == before
    assert any(f"those of version {version} (the current models)" in line and "--force" in line for line in lines)
    changed = job.TrainOptions(**{**options.__dict__, "seed": 1})  # another setting: a real run
    assert (
        job.same_as_before(
            store, registry.read_latest(store)[0], job.training_fingerprint(*job.load_data(store, changed), changed)
        )
        is None
    )


def test_a_code_change_on_the_same_data_and_settings_is_not_the_same_models(trained_store, tmp_path):
    """The fingerprint reads the package's source: a changed label rule is a new fingerprint, and
    the job would train; a change to the command line alone is not."""
    import trader_ml
    from trader_ml.release import job, manifest

    package = Path(trader_ml.__file__).parent
    changed = tmp_path / "changed"
    shutil.copytree(package, changed, ignore=shutil.ignore_patterns("__pycache__"))
    assert manifest.code_fingerprint(changed) == manifest.code_fingerprint(package)
    (changed / "cli" / "models.py").write_text((changed / "cli" / "models.py").read_text() + "\n# a comment\n")
    assert manifest.code_fingerprint(changed) == manifest.code_fingerprint(package)  # it parses and prints only
    labels = changed / "training" / "labels.py"
    labels.write_text(labels.read_text() + "\nHORIZON_NOTE = 11\n")
    code = manifest.code_fingerprint(changed)
    assert code != manifest.code_fingerprint(package)

    options = job.TrainOptions(store=trained_store.url, max_days=600, epochs=1, progress=False)
    context, features = job.load_data(trained_store, options)
    pointer = registry.read_latest(trained_store)[0]
    assert job.same_as_before(trained_store, pointer, job.training_fingerprint(context, features, options)) is not None
    assert (
        job.same_as_before(trained_store, pointer, job.training_fingerprint(context, features, options, code)) is None
    )


def test_ctrl_c_says_what_was_published(trained_store, tmp_path, monkeypatch):
    from trader_ml.release import job

    store = copy_of(trained_store, tmp_path / "store")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "train_candidate", interrupted)
    options = job.TrainOptions(store=store.url, seed=5, epochs=1, progress=False, output_dir=str(tmp_path / "o"))
    with pytest.raises(job.Interrupted, match="interrupted: nothing was published to .* latest.json is unchanged"):
        job.run_training(options, log=lambda _: None)


def test_too_short_a_history_says_how_many_days_are_stored(local_store, tmp_path):
    from trader_ml.errors import TraderMLError
    from trader_ml.release import job

    ingest(SOURCE, local_store, dt.date(2007, 1, 1), dt.date(2007, 1, 29), today=TODAY, log=lambda _: None)
    options = job.TrainOptions(store=local_store.url, epochs=1, progress=False, output_dir=str(tmp_path / "o"))
    with pytest.raises(
        TraderMLError,
        match=r"the store holds only 21 trading days \(2007-01-01 .. 2007-01-29\): "
        r"ingest more history, e\.g\. trader-ml ingest .* --start 2002-01-01 --end 2006-12-31",
    ):
        job.run_training(options, log=lambda _: None)


def test_the_stage_line_reads_as_one_phrase_without_a_model():
    assert "(" not in registry.describe_pointer(None).split(";")[0]
