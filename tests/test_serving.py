"""serving: the predictor, its fallback chain, the Lambda handler, the bundle and the template."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from trader_ml import registry
from trader_ml.errors import StoreError
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES, LATEST_KEY, REGIMES, daily_key
from trader_ml.serving.daily import load_day, stored_days
from trader_ml.serving.handler import daily_answer, handle
from trader_ml.serving.predictor import BASELINE_VERSION, InputError, Predictor
from trader_ml.store import LocalStore, S3Store

from .conftest import FAKE_AWS, copy_of, main_here, store_snapshot
from .faults import fault_proxy

ROOT = Path(__file__).resolve().parents[1]
SEED_REGIME = {"regime_label", "regime_probs", "regime_embedding"}
SEED_HEALTH = {"health_score", "vol_bucket", "behavior", "latent"}


@pytest.fixture
def store(trained_store, tmp_path) -> LocalStore:
    """A private copy, for tests that damage it."""
    return copy_of(trained_store, tmp_path / "copy")


@pytest.fixture(scope="module")
def day(trained_store):
    return load_day(trained_store)


def check_regime(answer: dict, source: str) -> None:
    assert set(answer) >= SEED_REGIME and answer["regime_label"] in REGIMES
    assert sum(answer["regime_probs"].values()) == pytest.approx(1.0) and len(answer["regime_embedding"]) == 8
    assert answer["model_source"] == source
    assert ("fallback_reason" in answer) == (source == "baseline")


def check_health(answers: dict, source: str) -> None:
    assert answers
    for answer in answers.values():
        assert set(answer) >= SEED_HEALTH and 0 <= answer["health_score"] <= 1 and len(answer["latent"]) == 16
        assert answer["model_source"] == source


def test_serves_the_promoted_version(trained_store, day):
    predictor = Predictor.from_store(trained_store.url)
    version = registry.read_latest(trained_store)[0]["version"]
    regime = predictor.predict_regime(day.context_rows)
    check_regime(regime, "trained")
    assert regime["model_version"] == version
    health, skipped, _ = predictor.predict_health(day.feature_rows)
    check_health(health, "trained")
    assert skipped == [] and set(health) == {r["symbol"] for r in day.feature_rows}


def fallback(predictor: Predictor, day, reason: str, kinds=("regime", "health")) -> None:
    """The models of ``kinds`` fall back to their baselines, saying ``reason``; the others stay
    trained (each model is loaded, checked and falls back on its own)."""
    regime = predictor.predict_regime(day.context_rows)
    check_regime(regime, "baseline" if "regime" in kinds else "trained")
    if "regime" in kinds:
        assert reason in regime["fallback_reason"] and regime["model_version"] == BASELINE_VERSION
    health, _, _ = predictor.predict_health(day.feature_rows)
    check_health(health, "baseline" if "health" in kinds else "trained")
    if "health" in kinds:
        assert all(reason in a["fallback_reason"] for a in health.values())


def test_no_latest_json(store, day):
    store.delete(LATEST_KEY)
    fallback(Predictor.from_store(store.url), day, "latest.json does not exist")


def test_checksum_mismatch(store, day):
    pointer, _ = registry.read_latest(store)
    store.write(pointer["health_model"], store.read(pointer["health_model"]) + b"\0")
    fallback(Predictor.from_store(store.url), day, "does not match the recorded", kinds=("health",))


def test_artifact_missing(store, day):
    store.delete(registry.read_latest(store)[0]["regime_model"])
    fallback(Predictor.from_store(store.url), day, "not found", kinds=("regime",))


def test_artifact_unreadable(store, day):
    pointer, _ = registry.read_latest(store)
    garbage = b"not an onnx model"
    store.write(pointer["regime_model"], garbage)
    store.write(LATEST_KEY, json.dumps({**pointer, "regime_sha256": registry.sha256(garbage)}).encode())
    fallback(Predictor.from_store(store.url), day, "not a loadable ONNX model", kinds=("regime",))


def test_metadata_that_does_not_fit_the_columns(store, day):
    import onnx

    pointer, _ = registry.read_latest(store)
    model = onnx.load_from_string(store.read(pointer["regime_model"]))
    meta = json.loads(model.metadata_props[0].value)
    model.metadata_props[0].value = json.dumps({**meta, "feature_order": list(reversed(meta["feature_order"]))})
    data = model.SerializeToString()
    store.write(pointer["regime_model"], data)
    store.write(LATEST_KEY, json.dumps({**pointer, "regime_sha256": registry.sha256(data)}).encode())
    fallback(Predictor.from_store(store.url), day, "features or regimes differ", kinds=("regime",))


def test_too_few_rows_for_the_model_but_enough_for_the_rules(trained_store, day):
    answer = Predictor.from_store(trained_store.url).predict_regime(day.context_rows[-40:])
    check_regime(answer, "baseline")
    assert "needs the last 63 trading days, got 40" in answer["fallback_reason"]
    with pytest.raises(InputError, match="the rules need the last 35 trading days, got 20"):
        Predictor.from_store(trained_store.url).predict_regime(day.context_rows[-20:])


def test_store_unreachable(day, monkeypatch):
    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    store = S3Store("s3://nowhere", region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1)
    predictor = Predictor(store)
    fallback(predictor, day, "StoreError")


def test_onnxruntime_missing(trained_store):
    code = f"""
import sys
sys.modules["onnxruntime"] = None
from trader_ml.serving.daily import load_day
from trader_ml.serving.predictor import Predictor
from trader_ml.store import LocalStore
day = load_day(LocalStore({str(trained_store.root)!r}))
answer = Predictor.from_store({str(trained_store.root)!r}).predict_regime(day.context_rows)
print(answer["model_source"], "|", answer["fallback_reason"])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("baseline | ") and "onnxruntime is not importable" in result.stdout


def test_new_version_goes_live_after_the_ttl_and_a_bad_one_does_not(store, day):
    now = [0.0]
    predictor = Predictor.from_store(store.url, ttl_seconds=600, clock=lambda: now[0])
    first = predictor.version
    pointer, etag = registry.read_latest(store)
    manifest = registry.read_manifest(store, first)
    artifacts = {k: store.read(manifest[f"{k}_model"]) for k in ("regime", "health")}
    second = registry.publish(
        store,
        dt.date(2030, 1, 2),
        artifacts,
        lambda v: {
            **manifest,
            "version": v,
            "regime_model": registry.artifact_key("regime", v),
            "health_model": registry.artifact_key("health", v),
        },
        log=lambda _: None,
    )
    registry.promote(store, second["version"])
    now[0] = 599.0
    assert predictor.predict_regime(day.context_rows)["model_version"] == first  # within the TTL
    now[0] = 601.0
    assert predictor.predict_regime(day.context_rows)["model_version"] == second["version"]
    store.write(LATEST_KEY, b'{"truncated')  # a bad new pointer
    now[0] = 1300.0
    answer = predictor.predict_regime(day.context_rows)
    assert answer["model_source"] == "trained" and answer["model_version"] == second["version"]


def test_a_pointer_naming_the_baseline_for_one_model_serves_it_and_the_other_trained(store, day):
    version = registry.read_latest(store)[0]["version"]
    pointer = registry.pointer_for(registry.read_manifest(store, version), None, ("health",))
    store.write(LATEST_KEY, json.dumps(pointer).encode())
    predictor = Predictor.from_store(store.url)
    regime = predictor.predict_regime(day.context_rows)
    check_regime(regime, "baseline")
    assert regime["model_version"] == BASELINE_VERSION and "names the rule baseline" in regime["fallback_reason"]
    answers, _, _ = predictor.predict_health(day.feature_rows)
    check_health(answers, "trained")
    assert {a["model_version"] for a in answers.values()} == {version}


def test_serving_imports_no_torch_pandas_or_training(store):
    code = f"""
import sys
from trader_ml.serving.handler import handle
from trader_ml.serving.predictor import Predictor
answer = handle({{"source": "aws.events", "detail-type": "Scheduled Event"}}, Predictor.from_store({str(store.root)!r}))
heavy = [m for m in sys.modules if m.split(".")[0] in ("torch", "pandas", "pyarrow", "sklearn", "scipy", "onnx")
         or m.startswith("trader_ml.training") or m == "trader_ml.models"]
print(answer["ok"], answer["regime"]["model_source"], heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True trained []"


def test_direct_invoke(trained_store, day):
    predictor = Predictor.from_store(trained_store.url)
    rows = [dict(r) for r in day.feature_rows]
    rows[0] = {**rows[0], "vol_63d": None}
    answer = handle({"context_rows": day.context_rows, "feature_rows": rows}, predictor)
    assert answer["ok"] is True
    check_regime(answer["regime"], "trained")
    check_health(answer["health"], "trained")
    assert answer["skipped"] == [rows[0]["symbol"]] and rows[0]["symbol"] not in answer["health"]


def test_scheduled_event_writes_predictions(store):
    before = set(store.list(""))
    answer = handle(
        {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, Predictor.from_store(store.url)
    )
    assert answer["ok"] and answer["date"] == "2008-06-30"
    assert set(store.list("")) - before == {"predictions/date=2008-06-30/predictions.json"}
    written = json.loads(store.read("predictions/date=2008-06-30/predictions.json"))
    assert written["regime"]["model_version"] == registry.read_latest(store)[0]["version"]
    assert set(written["health"]) == {f"SYN{i:03d}" for i in range(8)}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"hello": 1}, "unrecognised event"),
        ({"context_rows": "abc"}, "context_rows must be a list"),
        ({"context_rows": [{"spy_return_1d": 0.1}] * 5}, "the rules need the last 35 trading days"),
        ({"source": "aws.events", "detail": {"date": "2001-13-01"}}, "invalid date"),
        ({"source": "aws.events", "detail": {"date": "1999-01-04"}}, "no data for 1999-01-04"),
        ({"source": "aws.events", "detail": {"date": "20080102"}}, "invalid date"),  # fromisoformat takes it
        ({"source": "aws.events", "detail": {"date": "2008-01-02\n"}}, "invalid date"),
        ({"source": "aws.events", "detail": "2008-01-02"}, "detail must be an object"),
        ({"source": "aws.events", "detail": ["2008-01-02"]}, "detail must be an object"),
        ({"context_rows": [{"spy_return_1d": 0.01, "spy_return_21d": 0.02, "spy_vol_21d": 1e38}] * 70}, "spy_vol_21d"),
    ],
)
def test_bad_events_get_a_clear_error(trained_store, event, message, monkeypatch):
    from trader_ml.serving import handler as module

    monkeypatch.setattr(module, "_predictor", Predictor.from_store(trained_store.url))
    answer = module.handler(event, None)
    assert answer["ok"] is False and message in answer["error"] and "Traceback" not in answer["error"]


def test_one_bad_row_costs_its_own_symbol(trained_store, monkeypatch):
    """A row outside ingest's bounds, a row holding a word, and a row without a ticker, among a
    day's good rows: each is refused by name with its reason; every other symbol and the regime
    are answered by the trained models, in the handler and in predict alike."""
    from trader_ml.serving import handler as module

    day = module.load_day(trained_store)
    rows = [dict(r) for r in day.feature_rows]
    rows[3]["vol_21d"] = 46.63
    rows[5]["return_5d"] = "x"
    rows.append({**rows[0], "symbol": "AAPL\n"})
    bad = {rows[3]["symbol"], rows[5]["symbol"]}
    monkeypatch.setattr(module, "_predictor", Predictor.from_store(trained_store.url))
    answer = module.handler({"context_rows": day.context_rows, "feature_rows": rows}, None)
    assert answer["ok"] and answer["regime"]["model_source"] == "trained"
    assert set(answer["health"]) == {r["symbol"] for r in day.feature_rows} - bad
    assert {a["model_source"] for a in answer["health"].values()} == {"trained"}
    assert answer["refused"][rows[3]["symbol"]] == "vol_21d is 46.63, outside 0 .. 20, not a plausible value"
    assert "return_5d is str 'x', not a number" in answer["refused"][rows[5]["symbol"]]
    assert "not a ticker" in answer["refused"]["row 8"] and answer["skipped"] == []


def test_predict_serves_the_day_around_a_damaged_stored_row(trained_store, tmp_path, capsys):
    """A stored features.json whose row 3 has a volatility x100: predict exits 0, names the symbol,
    and answers the regime and the seven other symbols."""
    store = copy_of(trained_store, tmp_path / "damaged")
    newest = stored_days(store)[-1]
    key = daily_key(newest, "features.json")
    doc = json.loads(store.read(key))
    symbol = doc["rows"][3]["symbol"]
    doc["rows"][3]["vol_21d"] = 46.63  # a volatility x100, as a unit mistake leaves it
    store.write(key, json.dumps(doc).encode())
    result = main_here(capsys, "predict", "--store", store.url)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["regime"]["model_source"] == "trained"
    assert symbol in answer["refused"] and "vol_21d is" in answer["refused"][symbol]
    assert len(answer["health"]) == len(doc["rows"]) - 1 and symbol not in answer["health"]


def test_handler_on_s3(bucket, aws_env, trained_store, monkeypatch):
    s3 = S3Store(f"s3://{bucket}", region="us-east-1", endpoint_url=aws_env)
    keys = [k for k in trained_store.list("") if k.startswith(("models/", "data/daily/"))]
    s3.write_many((k, trained_store.read(k)) for k in keys)
    from trader_ml.serving import handler as module

    monkeypatch.setenv("TRADER_ML_STORE", f"s3://{bucket}")
    monkeypatch.setattr(module, "_predictor", None)
    answer = module.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
    assert answer["ok"] and answer["regime"]["model_source"] == "trained"
    assert s3.exists("predictions/date=2008-06-30/predictions.json")


def test_cli_predict_prints_what_the_handler_returns(trained_store):
    before = store_snapshot(trained_store)
    result = subprocess.run(
        [sys.executable, "-m", "trader_ml", "predict", "--store", trained_store.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert store_snapshot(trained_store) == before  # predict without --write writes nothing
    expected = daily_answer(Predictor.from_store(trained_store.url))
    assert json.loads(result.stdout) == json.loads(json.dumps(expected))
    assert expected["written"] == [] and expected["ok"] is True


WHEELHOUSE = ROOT / ".wheelhouse"


def test_bundle_runs_alone_in_an_empty_folder(trained_store, tmp_path, day):
    if not any(WHEELHOUSE.glob("onnxruntime-*.whl")):
        pytest.fail(f"no Lambda wheels in {WHEELHOUSE}: .ci/run downloads them (pip download ... -d .wheelhouse)")
    bundle = tmp_path / "lambda.zip"
    result = subprocess.run(
        [sys.executable, "-m", "trader_ml", "lambda-bundle", "--output", str(bundle), "--wheels-dir", str(WHEELHOUSE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
        names = archive.namelist()
    size = sum(p.stat().st_size for p in unpacked.rglob("*") if p.is_file())
    assert size < 250 * 2**20
    assert not any(n.startswith(("torch/", "pandas/", "pyarrow/", "trader_ml/training/")) for n in names)
    event = {"context_rows": day.context_rows, "feature_rows": day.feature_rows}
    code = f"""
import json, sys
sys.path[:0] = [{str(unpacked)!r}]
from trader_ml.serving.handler import handler
answer = handler(json.loads(sys.stdin.read()), None)
print(json.dumps({{"ok": answer["ok"], "source": answer["regime"]["model_source"], "n": len(answer["health"]),
                  "paths": sorted({{p.split("/site-packages")[0] for p in sys.path if "site-packages" in p}})}}))
"""
    env = {"PATH": "/usr/bin:/bin", "TRADER_ML_STORE": str(trained_store.root)}
    # -I: isolated (no user site, no PYTHON* variables); -S: not even the interpreter's site-packages.
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out == {"ok": True, "source": "trained", "n": 8, "paths": []}


def test_sam_template_is_valid():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), str(ROOT / "deploy" / "template.yaml")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "deploy" / "template.yaml").read_text()
    assert "Handler: trader_ml.serving.handler.handler" in text and "arn:aws:s3:::${BucketName}/predictions/*" in text


def test_feature_and_context_orders_are_the_contract():
    assert CONTEXT_FEATURES[0] == "spy_return_1d" and ASSET_FEATURES[-1] == "rel_strength_63d"
    assert os.path.exists(ROOT / "deploy" / "template.yaml")


def test_predict_on_a_weekend_names_the_nearest_stored_days(trained_store):
    result = subprocess.run(
        [sys.executable, "-m", "trader_ml", "predict", "--store", trained_store.url, "--date", "2008-06-28"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "2008-06-28 (Saturday) is not a stored trading day" in result.stderr
    assert "2008-06-27 and 2008-06-30" in result.stderr and "--date 2008-06-27" in result.stderr
    later = subprocess.run(
        [sys.executable, "-m", "trader_ml", "predict", "--store", trained_store.url, "--date", "2009-01-05"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert later.returncode == 2 and "the newest stored day is 2008-06-30" in later.stderr


def test_the_served_baseline_is_the_evaluated_baseline(trained_store):
    """Serving reads enough history that the rules answer as they do over the whole history
    (the tone reference needs a year of 21-day windows)."""
    from trader_ml.backtest.history import regime_history
    from trader_ml.data.partitions import read_table
    from trader_ml.schema import CONTEXT_FEATURES
    from trader_ml.serving.daily import stored_days
    from trader_ml.serving.predictor import baseline_regime

    context = read_table(trained_store, "context")
    evaluated, _ = regime_history(context[list(CONTEXT_FEATURES)].to_numpy())
    days = stored_days(trained_store)
    for i in range(len(days) - 60, len(days), 7):
        served = baseline_regime(load_day(trained_store, days[i]).context_rows)
        assert list(served["regime_probs"].values()) == pytest.approx(list(evaluated[i]), abs=1e-12), days[i]


def test_one_bad_artifact_leaves_the_other_model_serving_and_models_list_says_so(store, day, capsys):
    from trader_ml.cli import main

    pointer, _ = registry.read_latest(store)
    data = bytearray(store.read(pointer["regime_model"]))
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    store.write(pointer["regime_model"], bytes(data))
    fallback(Predictor.from_store(store.url), day, "does not match the recorded", kinds=("regime",))
    assert main(["models", "list", "--store", store.url]) == 2
    listed = capsys.readouterr()
    assert "regime(broken)+health" in listed.out and "regime" in listed.err and "cannot be served" in listed.err


def test_a_warm_container_keeps_the_last_good_model_of_a_kind_whose_new_artifact_is_bad(store, day):
    clock = [0.0]
    predictor = Predictor(store, ttl_seconds=1, clock=lambda: clock[0])
    version = predictor.version
    pointer, _ = registry.read_latest(store)
    key = "models/regime_v20990101.onnx"  # a newer version whose regime artifact is damaged
    store.write(key, b"damaged")
    store.write(
        LATEST_KEY,
        json.dumps(
            {**pointer, "version": "20990101", "regime_model": key, "regime_sha256": registry.sha256(b"damaged")}
        ).encode(),
    )
    clock[0] = 10.0
    regime = predictor.predict_regime(day.context_rows)
    assert regime["model_source"] == "trained" and regime["model_version"] == version
    health, _, _ = predictor.predict_health(day.feature_rows)
    check_health(health, "trained")


def test_predict_prints_json_alone_when_onnxruntime_prints_its_banner(store, monkeypatch, capsys):
    """onnxruntime prints an "EP Error" banner with print() when a session fails on some
    files: stdout must still be the answer's JSON alone."""
    import onnxruntime

    from trader_ml.cli import main

    real = onnxruntime.InferenceSession

    def failing(data, *args, **kwargs):
        if data == store.read(registry.read_latest(store)[0]["regime_model"]):
            print("*************** EP Error ***************")
            raise RuntimeError("EP Error")
        return real(data, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", failing)
    assert main(["predict", "--store", store.url]) == 0
    printed = capsys.readouterr()
    answer = json.loads(printed.out)
    assert answer["regime"]["model_source"] == "baseline" and "EP Error" in printed.err
    assert answer["health"] and all(a["model_source"] == "trained" for a in answer["health"].values())


def test_a_junk_day_folder_is_not_a_day(store):
    newest = load_day(store).date
    store.write("data/daily/date=zzzz-zz-zz/context.json", b"{}")
    store.write("data/daily/date=2099-02-30/context.json", b"{}")
    assert load_day(store).date == newest


def test_a_stalled_latest_json_falls_back_in_time_with_the_reason(bucket, aws_env, trained_store, monkeypatch):
    """models/latest.json stalled behind a proxy for 75 s (botocore's own limits would wait 60 s
    a try, eight tries): the Lambda's cold start answers from the baselines, says why, and writes
    the day's answer, in a fraction of the function's 120 s."""
    from trader_ml.serving import handler as module

    s3 = S3Store(f"s3://{bucket}", region="us-east-1", endpoint_url=aws_env)
    keys = [k for k in trained_store.list("") if k.startswith(("models/", "data/daily/"))]
    s3.write_many((k, trained_store.read(k)) for k in keys)
    with fault_proxy(aws_env, stall="latest.json", stall_seconds=75) as endpoint:
        monkeypatch.setenv("TRADER_ML_STORE", f"s3://{bucket}")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setattr(module, "_predictor", None)
        began = time.monotonic()
        answer = module.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
        took = time.monotonic() - began
    assert answer["ok"] and answer["regime"]["model_source"] == "baseline"
    assert (
        "latest.json" in answer["regime"]["fallback_reason"] and "Read timeout" in answer["regime"]["fallback_reason"]
    )
    assert s3.exists(f"predictions/date={answer['date']}/predictions.json")
    assert took < 40, f"the fallback took {took:.0f} s"  # two 5 s reads and a backoff, not 75 s or 552 s


def test_no_s3_request_starts_after_the_deadline(bucket, aws_env):
    s3 = S3Store(f"s3://{bucket}", region="us-east-1", endpoint_url=aws_env)
    s3.write("a.json", b"{}")
    with s3.deadline(0.0), pytest.raises(StoreError, match="S3 did not answer in time"):
        time.sleep(0.01)
        s3.read("a.json")
    assert s3.read("a.json") == b"{}"  # the deadline ends with its block
