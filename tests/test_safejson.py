"""safejson, and every reader of the JSON a store holds: damage is a reason, never a traceback."""

from __future__ import annotations

import json

import pytest

from trader_ml import registry, safejson
from trader_ml.cli import main
from trader_ml.data import completeness
from trader_ml.errors import TraderMLError
from trader_ml.schema import LATEST_KEY, daily_key, day_marker_key
from trader_ml.serving import handler
from trader_ml.serving.daily import load_day
from trader_ml.serving.predictor import Predictor
from trader_ml.store import LocalStore

from .conftest import copy_of

DEEP = b"[" * 200_000 + b"]" * 200_000  # under a megabyte; RecursionError in json.loads


def test_damage_is_named():
    assert safejson.loads(b"[" * 32 + b"]" * 32, "x") is not None  # deeper than any trader-ml file: still JSON
    with pytest.raises(safejson.DamagedJSON, match="x.json: nests too deep"):
        safejson.loads(DEEP, "x.json")
    with pytest.raises(safejson.DamagedJSON, match="y: not valid JSON"):
        safejson.loads(b'{"a": ', "y")
    with pytest.raises(safejson.DamagedJSON, match="z: not UTF-8"):
        safejson.loads(b"\xff\xfe", "z")
    with pytest.raises(safejson.DamagedJSON, match="w: expected a JSON object, found list"):
        safejson.loads_object(b"[1, 2]", "w")
    with pytest.raises(safejson.DamagedJSON, match="v: missing key\\(s\\) rows"):
        safejson.loads_object(b"{}", "v", ("rows",))


@pytest.fixture
def store(trained_store, tmp_path) -> LocalStore:
    return copy_of(trained_store, tmp_path / "copy")


def test_a_deeply_nested_latest_json_is_a_reason_everywhere(store, capsys, monkeypatch):
    warm = Predictor(store, ttl_seconds=0)
    version = warm.version  # a warm container, serving its models
    store.write(LATEST_KEY, DEEP)
    assert warm.predict_regime(load_day(store).context_rows)["model_version"] == version  # keeps them
    cold = Predictor(store)
    answer = handler.daily_answer(cold)
    assert answer["regime"]["model_source"] == "baseline" and "nests too deep" in answer["regime"]["fallback_reason"]
    monkeypatch.setattr(handler, "_predictor", Predictor(store))
    monkeypatch.setattr(handler, "write_predictions", lambda store, answer: "not written")
    assert handler.handler({"source": "aws.events"})["ok"]
    assert main(["models", "list", "--store", store.url]) == 2
    listed = capsys.readouterr()
    assert "nests too deep" in listed.err and len(listed.err.strip().splitlines()) == 1 and version in listed.out
    assert main(["models", "rollback", "--store", store.url]) == 2
    assert "models promote VERSION" in capsys.readouterr().err
    assert main(["models", "promote", version, "--store", store.url]) == 0  # the repair
    assert registry.read_latest(store)[0]["version"] == version


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("context.json", b"[1, 2]", "expected a JSON object, found list"),
        ("context.json", b'{"spy_return_1d": 0.1}', "missing key"),
        ("context.json", b'{"date": "1999-01-01"}', "dated '1999-01-01'"),
        ("features.json", b"{}", "missing key\\(s\\) rows"),
        ("features.json", b'{"rows": {"a": 1}}', "rows is not a list of objects"),
        ("features.json", b'{"rows": [1, 2]}', "rows is not a list of objects"),
        ("features.json", DEEP, "nests too deep"),
        ("context.json", DEEP, "nests too deep"),
    ],
)
def test_damaged_daily_json_is_one_line(store, name, data, message, monkeypatch):
    day = load_day(store).date
    store.write(daily_key(day, name), data)
    with pytest.raises(TraderMLError, match=message):
        load_day(store)
    monkeypatch.setattr(handler, "_predictor", Predictor(store))
    answer = handler.handler({"source": "aws.events"})
    assert answer["ok"] is False and not answer["error"].startswith("internal error")


@pytest.mark.parametrize("data", [b"{not json", b"[]", DEEP, b'{"version": "x"}', json.dumps({"a": 1}).encode()])
def test_damaged_manifests_are_named_and_the_rest_listed(store, data, capsys):
    version = registry.read_latest(store)[0]["version"]
    store.write(registry.manifest_key(version), data)
    with pytest.raises(registry.RegistryError, match=f"manifest_v{version}.json"):
        registry.read_manifest(store, version)
    assert main(["models", "list", "--store", store.url]) == 2
    listed = capsys.readouterr()
    assert version in listed.out and "manifest unreadable" in listed.out
    assert f"manifest_v{version}.json" in listed.err and len(listed.err.strip().splitlines()) == 1


def test_a_deleted_manifest_still_lists_what_serves(store, capsys):
    version = registry.read_latest(store)[0]["version"]
    store.delete(registry.manifest_key(version))
    assert main(["models", "list", "--store", store.url]) == 2
    listed = capsys.readouterr()
    assert "no model versions" not in listed.out and "regime+health" in listed.out and version in listed.out
    assert f"no version {version}" in listed.err


def test_a_deep_day_marker_or_journal_reads_as_damage(store):
    day = completeness.check(store).complete[-1]
    store.write(day_marker_key(day), DEEP)
    assert "is damaged" in completeness.check(store).incomplete[day]
    store.write(completeness.JOURNAL_KEY, DEEP)
    assert completeness.journal_days(store) == []


def test_shapes_name_the_place_that_differs():
    shape = {
        "a": safejson.NUMBER,
        "per_model": safejson.Each(dict),
        "rows": safejson.Each(safejson.Range(0, 1), lists=True),
    }
    assert safejson.problem({"a": 1, "per_model": {"x": {}}, "rows": [0.5]}, shape) is None
    assert safejson.problem({"a": True, "per_model": {}, "rows": []}, shape) == "a: expected a number, found bool"
    assert (
        safejson.problem({"a": 1, "per_model": [{}], "rows": []}, shape) == "per_model: expected an object, found list"
    )
    assert safejson.problem({"a": 1, "per_model": {}, "rows": [2]}, shape) == "rows[0]: 2 is outside 0 .. 1"
    with pytest.raises(safejson.DamagedJSON, match=r"f.json: rows\[0\]: 2 is outside 0 \.\. 1 \(damaged\)"):
        safejson.check({"a": 1, "per_model": {}, "rows": [2]}, shape, "f.json")
