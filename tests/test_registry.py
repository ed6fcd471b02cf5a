"""registry: versions, latest.json by compare-and-swap, promotion, rollback."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import pytest

from trader_ml import registry
from trader_ml.errors import PreconditionFailed, StoreError
from trader_ml.registry import LostRace, RegistryError
from trader_ml.schema import LATEST_KEY
from trader_ml.store import S3Store

from .faults import fault_proxy

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
    assert first["regime_metrics"] == {"test_accuracy": None, "test_f1_macro": 0.5, "model_type": "baseline"}
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


def test_failed_upload_leaves_latest_json_as_it_was(s3_store, aws_env):
    v1 = store_version(s3_store, b"1")
    registry.promote(s3_store, v1)
    before = s3_store.read(LATEST_KEY)
    with fault_proxy(aws_env, fail="regime_v") as endpoint:
        flaky = S3Store(s3_store.url, region="us-east-1", endpoint_url=endpoint, max_attempts=2)
        with pytest.raises(
            StoreError,
            match=r"upload failed .*written before the failure: models/health_v20260130-2.onnx; latest.json is unchanged",
        ):
            store_version(flaky, b"2")
    assert s3_store.read(LATEST_KEY) == before
    assert registry.versions(s3_store) == [v1]  # no manifest: the half-stored version is not listed


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


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_lost_reply_to_a_conditional_put_is_a_write_done(s3_store, aws_env, attempts):
    """S3 stores the object and the reply never arrives: with no retry the call fails on the
    closed connection; with retries the second try is refused (412). Either way the object is
    read back, holds this run's bytes, and the write counts as done: the version is whole and
    current, never "exists already" or "moved while this run was deciding"."""
    v1 = store_version(s3_store, b"1")
    registry.promote(s3_store, v1)
    with fault_proxy(aws_env, drop="_v20260130-2.onnx") as endpoint:
        flaky = S3Store(s3_store.url, region="us-east-1", endpoint_url=endpoint, max_attempts=attempts)
        v2 = store_version(flaky, b"2")
    assert registry.versions(s3_store) == [v1, v2]
    with fault_proxy(aws_env, drop="latest.json") as endpoint:
        flaky = S3Store(s3_store.url, region="us-east-1", endpoint_url=endpoint, max_attempts=attempts)
        pointer = registry.promote(flaky, v2)
    assert registry.read_latest(s3_store)[0] == pointer and pointer["version"] == v2


def test_a_conditional_put_refused_for_someone_elses_object_still_fails(s3_store):
    s3_store.create("models/x.onnx", b"theirs")
    with pytest.raises(PreconditionFailed):
        s3_store.create("models/x.onnx", b"ours")
    assert s3_store.read("models/x.onnx") == b"theirs"
