"""registry and gate: versions, latest.json by compare-and-swap, promotion, rollback, the gate."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import multiprocessing
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest
from sklearn.metrics import f1_score

from trader_ml import registry
from trader_ml.errors import StoreError
from trader_ml.registry import LostRace, RegistryError
from trader_ml.schema import LATEST_KEY
from trader_ml.store import S3Store
from trader_ml.training.gate import (
    Comparison,
    compare,
    decide,
    decide_health,
    log_loss_comparison,
    mean_block_length,
    regime_comparison,
)
from trader_ml.training.metrics import macro_f1_rows

DAY = dt.date(2026, 1, 30)


def fake_manifest(version: str, artifacts: dict[str, bytes]) -> dict:
    return {
        "version": version,
        "timestamp": "2026-01-30T10:00:00",
        "regime_model": registry.artifact_key("regime", version),
        "health_model": registry.artifact_key("health", version),
        "regime_metrics": {"test_accuracy": 0.8, "test_f1_macro": 0.7, "model_type": "gru"},
        "health_metrics": {"test_recon_mse": 0.02, "test_health_correlation": 0.3, "model_type": "autoencoder"},
        "regime_sha256": registry.sha256(artifacts["regime"]),
        "health_sha256": registry.sha256(artifacts["health"]),
        "data_window": {"first_date": "2025-01-30", "last_date": "2026-01-29", "rows": 250, "symbols": 20},
        "package_version": "0.1.0",
        "baseline_metrics": {"regime": {"test_f1_macro": 0.5}, "health": {"test_health_correlation": 0.2}},
    }


def store_version(store, tag: bytes, day: dt.date = DAY) -> str:
    artifacts = {"regime": b"regime " + tag, "health": b"health " + tag}
    return registry.publish(store, day, artifacts, lambda v: fake_manifest(v, artifacts), log=lambda _: None)["version"]


def test_same_day_gets_a_new_version_never_an_overwrite(any_store):
    first = store_version(any_store, b"one")
    second = store_version(any_store, b"two")
    assert (first, second) == ("20260130", "20260130-2")
    assert any_store.read(registry.artifact_key("regime", first)) == b"regime one"
    assert registry.versions(any_store) == ["20260130", "20260130-2"]


def test_promote_then_rollback(any_store):
    v1, v2 = store_version(any_store, b"1"), store_version(any_store, b"2", dt.date(2026, 2, 27))
    registry.promote(any_store, v1)
    pointer = registry.promote(any_store, v2)
    assert pointer["version"] == v2 and pointer["previous_version"] == v1
    assert [entry["version"] for entry in pointer["history"]] == [v1, v2]
    back = registry.rollback(any_store)
    assert back["version"] == v1 and back["previous_version"] is None
    assert registry.read_latest(any_store)[0]["regime_model"] == registry.artifact_key("regime", v1)
    with pytest.raises(RegistryError, match="no previous version"):
        registry.rollback(any_store)


def test_each_model_is_promoted_on_its_own_and_rolled_back_as_it_was(any_store):
    v1, v2 = store_version(any_store, b"1"), store_version(any_store, b"2", dt.date(2026, 2, 27))
    first = registry.promote(any_store, v1, ("health",))
    assert first["regime_model"] is None and first["regime_sha256"] is None  # the rule baseline serves it
    assert first["regime_metrics"] == {"test_f1_macro": 0.5, "model_type": "baseline"}
    assert first["health_model"] == registry.artifact_key("health", v1)
    second = registry.promote(any_store, v2, ("regime",))
    assert registry.model_version(second, "regime") == v2 and registry.model_version(second, "health") == v1
    assert second["history"][-1] == {"version": v2, "regime": v2, "health": v1}
    assert registry.read_latest(any_store)[0] == second  # a mixed pointer reads back as valid
    back = registry.rollback(any_store)
    assert back["regime_model"] is None and registry.model_version(back, "health") == v1
    assert back["version"] == v1 and back["previous_version"] is None


def test_a_pointer_from_before_per_model_promotion_still_reads_and_rolls_back(local_store):
    v1, v2 = store_version(local_store, b"1"), store_version(local_store, b"2")
    old = {**registry.pointer_for(registry.read_manifest(local_store, v2), None), "history": [v1, v2]}
    local_store.write(LATEST_KEY, json.dumps(old).encode())
    back = registry.rollback(local_store)
    assert registry.model_version(back, "regime") == v1 and registry.model_version(back, "health") == v1


def test_promote_refuses_a_damaged_artifact(local_store):
    version = store_version(local_store, b"x")
    local_store.write(registry.artifact_key("health", version), b"tampered")
    with pytest.raises(RegistryError, match="sha256 .* does not match"):
        registry.promote(local_store, version)
    assert registry.read_latest(local_store) == (None, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"version": "2026', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps({"version": "1"}).encode(), "missing key"),
        (None, "points outside models/"),
    ],
)
def test_bad_latest_json_is_a_clear_error(local_store, content, message):
    if content is None:
        version = store_version(local_store, b"x")
        pointer = registry.promote(local_store, version)
        content = json.dumps({**pointer, "regime_model": "../secrets/regime.onnx"}).encode()
    local_store.write(LATEST_KEY, content)
    with pytest.raises(RegistryError, match=message):
        registry.read_latest(local_store)


@pytest.mark.parametrize(
    "damage", [b'{"version": "2026', b"[1, 2]", b"\xff\xfe", json.dumps({"version": "1"}).encode()]
)
def test_promote_repairs_a_damaged_latest_json_and_keeps_it_aside(any_store, damage, capsys):
    from trader_ml.cli import main

    version = store_version(any_store, b"x")
    any_store.write(LATEST_KEY, damage)
    with pytest.raises(RegistryError, match="repair it with trader-ml models promote VERSION"):
        registry.read_latest(any_store)
    assert main(["models", "list", "--store", any_store.url]) == 2
    listed = capsys.readouterr()
    assert "trader-ml models promote VERSION" in listed.err and version in listed.out  # still lists what to promote
    with pytest.raises(RegistryError, match="history of versions is lost.*models promote VERSION"):
        registry.rollback(any_store)
    assert main(["models", "promote", version, "--store", any_store.url]) == 0  # the message was true
    assert "kept as models/latest.json.damaged-" in capsys.readouterr().out.replace(any_store.url.rstrip("/") + "/", "")
    assert registry.read_latest(any_store)[0]["version"] == version
    (kept,) = any_store.list(f"{LATEST_KEY}.damaged-")
    assert any_store.read(kept) == damage


def test_missing_latest_json_means_no_models_yet(local_store):
    assert registry.read_latest(local_store) == (None, None)
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback(local_store)


def _race(url: str, endpoint: str, version: str, etag: str | None, results) -> None:
    store = S3Store(url, region="us-east-1", endpoint_url=endpoint)
    pointer = registry.pointer_for(registry.read_manifest(store, version), None)
    try:
        registry.swap_latest(store, pointer, etag)
        results.put((version, "won"))
    except LostRace as e:
        results.put((version, str(e)))


def test_two_trainers_racing_end_with_one_winner(s3_store, aws_env):
    v1, v2 = store_version(s3_store, b"1"), store_version(s3_store, b"2")
    _, etag = registry.read_latest(s3_store)  # both read "no latest.json yet" before either writes
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_race, args=(s3_store.url, aws_env, v, etag, results)) for v in (v1, v2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    outcome = dict(results.get(timeout=5) for _ in workers)
    winners = [v for v, r in outcome.items() if r == "won"]
    assert len(winners) == 1
    loser = (set(outcome) - set(winners)).pop()
    assert "moved while this run was deciding" in outcome[loser] and f"points to version {winners[0]}" in outcome[loser]
    assert registry.read_latest(s3_store)[0]["version"] == winners[0]
    assert registry.versions(s3_store) == [v1, v2]  # both stored


class _FailingProxy(BaseHTTPRequestHandler):
    """Forwards to moto, except PUTs whose path contains ``fail``: those get a 500."""

    target = ""
    fail = ""

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "PUT" and self.fail in self.path:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = urlsplit(self.target)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

    def log_message(self, *args):
        pass


def test_failed_upload_leaves_latest_json_as_it_was(s3_store, aws_env):
    v1 = store_version(s3_store, b"1")
    registry.promote(s3_store, v1)
    before = s3_store.read(LATEST_KEY)
    _FailingProxy.target, _FailingProxy.fail = aws_env, "regime_v"
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _FailingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        flaky = S3Store(
            s3_store.url, region="us-east-1", endpoint_url=f"http://127.0.0.1:{proxy.server_address[1]}", max_attempts=2
        )
        with pytest.raises(
            StoreError,
            match=r"upload failed .*written before the failure: models/health_v20260130-2.onnx; latest.json is unchanged",
        ):
            store_version(flaky, b"2")
    finally:
        proxy.shutdown()
    assert s3_store.read(LATEST_KEY) == before
    assert registry.versions(s3_store) == [v1]  # no manifest: the half-stored version is not listed


def test_macro_f1_of_resamples_matches_scikit_learn_row_by_row():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, (6, 300)), rng.integers(0, 5, (6, 300))
    y[0] = np.where(y[0] == 3, 0, y[0])  # a row where a class never occurs
    expected = [
        f1_score(a, b, labels=sorted(set(a)), average="macro", zero_division=0) for a, b in zip(y, p, strict=True)
    ]
    assert macro_f1_rows(y, p, 5) == pytest.approx(expected)


def test_block_length_follows_the_dependence_of_the_days():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=1000)
    persistent = np.zeros(1000)
    for t in range(1, 1000):
        persistent[t] = 0.95 * persistent[t - 1] + noise[t]
    assert mean_block_length(persistent) > 3 * mean_block_length(noise)
    assert mean_block_length(np.zeros(300)) == 10.0  # flat: the fallback


def test_identical_predictions_have_a_zero_interval():
    y = np.repeat(np.arange(5), 10)
    c = regime_comparison(y, y, y.copy())
    assert (c.difference, c.low, c.high) == (0.0, 0.0, 0.0)


def _c(diff: float, low: float, high: float, candidate: float = 0.6, other: float = 0.5) -> Comparison:
    return Comparison("test_f1_macro", candidate, other, diff, low, high)


def test_gate_decisions():
    beats = _c(0.1, 0.01, 0.2)
    assert not decide(_c(-0.1, -0.2, 0.0, 0.4, 0.5), None, 30).promote  # loses to the baseline
    assert not decide(_c(0.0, -0.1, 0.1, 0.5, 0.5), None, 30).promote  # a tie does not beat it
    lucky = decide(_c(0.1, -0.02, 0.2), None, 30)  # ahead, but the interval reaches below zero
    assert not lucky.promote and "cannot be told from its baseline" in lucky.reason
    short = decide(beats, None, 19)
    assert not short.promote and "only 19 test days; the gate needs at least 20" in short.reason
    assert decide(beats, None, 30).promote  # first model
    assert decide(beats, _c(-0.01, -0.015, 0.02), 30).promote  # not worse beyond 0.02
    worse = decide(beats, _c(-0.2, -0.3, -0.1), 30)
    assert not worse.promote and "worse than the champion" in worse.reason
    unsure = decide(beats, _c(0.05, -0.3, 0.4), 25)
    assert not unsure.promote and "cannot be told from the champion on 25 test days" in unsure.reason


def _ll(diff: float, low: float, high: float, candidate: float = 0.45, other: float = 0.47) -> Comparison:
    return Comparison("test_log_loss", candidate, other, diff, low, high)


def test_health_gate_decisions():
    """Log loss below every reference beyond doubt, ranking within 0.01 of -vol_63d, and no worse
    than the champion beyond a quarter of the tolerance."""
    wins = {"base rate": _ll(-0.05, -0.06, -0.04, other=0.50), "calibrated -vol_63d": _ll(-0.02, -0.03, -0.01)}
    ranks = _c(-0.004, -0.008, 0.0, 0.30, 0.304)
    passed = decide_health(wins, ranks, None, 30)
    assert passed.promote and passed.vs_baseline.other == 0.47  # the strongest reference is reported
    assert set(passed.checks) == {"vs base rate", "vs calibrated -vol_63d", "rank vs -vol_63d"}
    unsure = decide_health({**wins, "calibrated heuristic": _ll(-0.01, -0.02, 0.001)}, ranks, None, 30)
    assert not unsure.promote and "cannot be told from the calibrated heuristic on log loss" in unsure.reason
    loses = decide_health({**wins, "calibrated -vol_21d": _ll(0.01, 0.0, 0.02)}, ranks, None, 30)
    assert not loses.promote and "does not beat the calibrated -vol_21d" in loses.reason
    behind = decide_health(wins, _c(-0.02, -0.03, -0.01, 0.28, 0.30), None, 30)
    assert not behind.promote and "may rank worse than -vol_63d by more than 0.01" in behind.reason
    assert not decide_health(wins, ranks, None, 19).promote
    assert decide_health(wins, ranks, _ll(0.002, -0.001, 0.004), 30, tolerance=0.02).promote  # within 0.005
    worse = decide_health(wins, ranks, _ll(0.02, 0.01, 0.03), 30, tolerance=0.02)
    assert not worse.promote and "worse than the champion on log loss" in worse.reason


def test_log_loss_comparison_is_exact_and_its_own_interval_is_zero():
    rng = np.random.default_rng(4)
    days = np.repeat(np.arange(40), 5)
    target = (rng.random(200) < 0.8).astype(float)
    good = np.where(target == 1, 0.85, 0.6)
    flat = np.full(200, 0.8)
    same = log_loss_comparison(days, target, good, good.copy())
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    c = log_loss_comparison(days, target, good, flat)
    expected = -(target * np.log(good) + (1 - target) * np.log(1 - good))
    assert c.candidate == pytest.approx(expected.reshape(40, 5).mean(axis=1).mean())
    assert c.other == pytest.approx(-(0.8 * np.log(0.8) + 0.2 * np.log(0.2)), abs=0.05)
    assert c.high < 0  # a score that knows the outcomes beats the base rate beyond doubt


def test_block_bootstrap_widens_with_fewer_days():
    rng = np.random.default_rng(1)

    def width(n):
        y = rng.integers(0, 3, n)
        a = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        b = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        daily = (a == y).astype(float) - (b == y).astype(float)
        c = compare("f1", lambda idx, p: macro_f1_rows(y[idx], p[idx], 3), a, b, daily)
        return c.high - c.low

    assert width(30) > width(600)


@pytest.mark.parametrize(
    "field, value",
    [("version", "20260130\n"), ("regime_model", "models/regime_v20260130.onnx\n"), ("health_sha256", "a" * 64 + "\n")],
)
def test_a_trailing_newline_is_not_a_valid_field(local_store, field, value):
    version = store_version(local_store, b"x")
    pointer = registry.promote(local_store, version)
    local_store.write(LATEST_KEY, json.dumps({**pointer, field: value}).encode())
    with pytest.raises(RegistryError, match="damaged|not|outside"):
        registry.read_latest(local_store)
    with pytest.raises(RegistryError, match="invalid version"):
        registry.read_manifest(local_store, version + "\n")


def test_the_manifest_timestamp_is_utc_in_the_guides_format():
    import datetime as dt

    paris = dt.datetime(2026, 1, 30, 11, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert registry.utc_timestamp(paris) == "2026-01-30T10:00:00"
    assert dt.datetime.fromisoformat(registry.utc_timestamp()).tzinfo is None
