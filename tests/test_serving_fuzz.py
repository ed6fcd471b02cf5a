"""serving under hostile input: fuzzed Lambda events, latest.json and artifact metadata.

Whatever arrives, the answer is a JSON object: never "internal error", never a traceback, and
never ``model_source: trained`` with a NaN anywhere in it.
"""

from __future__ import annotations

import json
import math

import onnx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trader_ml import registry
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES, LATEST_KEY
from trader_ml.serving import handler
from trader_ml.serving.daily import load_day
from trader_ml.serving.predictor import Predictor
from trader_ml.store import LocalStore

from .conftest import copy_of
from .strategies import json_values as shared_json_values
from .strategies import scalars as shared_scalars

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = shared_scalars(10**400, [1e39, -1e39, 3.5e38, 0.01, -0.02, 0.2])
json_values = shared_json_values(scalars)


def rows(columns, with_symbol: bool):
    keys = st.sampled_from(list(columns))
    row = st.dictionaries(keys, scalars, max_size=len(columns))
    if with_symbol:
        row = st.builds(
            lambda r, s: {**r, "symbol": s},
            row,
            st.one_of(st.sampled_from(["AAPL", "MSFT", "x\x00y", "../a", "A"]), scalars),
        )
    return st.lists(st.one_of(row, json_values), max_size=70)


events = st.one_of(
    json_values,
    st.fixed_dictionaries({"context_rows": rows(CONTEXT_FEATURES, False)}),
    st.fixed_dictionaries({"feature_rows": rows(ASSET_FEATURES, True)}),
    st.fixed_dictionaries(
        {
            "source": st.just("aws.events"),
            "detail": st.one_of(json_values, st.fixed_dictionaries({"date": json_values})),
        }
    ),
)


def numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers(v)
    elif isinstance(value, float):
        yield value


def check_answer(answer: object) -> None:
    assert isinstance(answer, dict) and "ok" in answer
    if not answer["ok"]:
        assert not answer["error"].startswith("internal error") and "Traceback" not in answer["error"]
        return
    for part in [answer.get("regime"), *(answer.get("health") or {}).values()]:
        if isinstance(part, dict) and part.get("model_source") == "trained":
            assert all(math.isfinite(v) for v in numbers(part)), part


@pytest.fixture(scope="module")
def day_event(trained_store) -> dict:
    day = load_day(trained_store)
    return {"context_rows": day.context_rows, "feature_rows": day.feature_rows}


@pytest.fixture
def store(trained_store, tmp_path) -> LocalStore:
    return copy_of(trained_store, tmp_path / "copy")


@FUZZ
@given(event=events)
def test_fuzzed_events_never_break_the_lambda(trained_store, monkeypatch, tmp_path_factory, event):
    monkeypatch.setattr(handler, "_predictor", Predictor(trained_store))
    monkeypatch.setattr(handler, "write_predictions", lambda store, answer: "not written in this test")
    check_answer(handler.handler(event))


pointer_fields = st.sampled_from(
    [
        "version",
        "timestamp",
        "regime_model",
        "health_model",
        "regime_sha256",
        "health_sha256",
        "regime_metrics",
        "history",
    ]
)


@FUZZ
@given(field=pointer_fields, value=json_values, whole=st.one_of(st.none(), json_values))
def test_fuzzed_latest_json_falls_back_never_crashes(trained_store, store, day_event, field, value, whole):
    pointer, _ = registry.read_latest(trained_store)  # the pristine one: examples share ``store``
    damaged = whole if whole is not None else {**pointer, field: value}
    store.write(LATEST_KEY, json.dumps(damaged, allow_nan=True).encode())
    check_answer(handler.handle(day_event, Predictor(store)))


def with_metadata(data: bytes, change) -> bytes:
    model = onnx.load_from_string(data)
    entry = next(p for p in model.metadata_props if p.key == "trader_ml")
    entry.value = change(json.loads(entry.value))
    return model.SerializeToString()


metadata_fields = st.sampled_from(["lookback", "vol_boundaries", "feature_order", "regimes", "format_version", "kind"])


@FUZZ
@given(kind=st.sampled_from(["regime", "health"]), field=metadata_fields, value=json_values, as_list=st.booleans())
def test_fuzzed_artifact_metadata_falls_back_never_crashes(
    trained_store, store, day_event, kind, field, value, as_list
):
    pointer, _ = registry.read_latest(trained_store)  # the pristine one: examples share ``store``
    key = pointer[f"{kind}_model"]
    data = with_metadata(
        trained_store.read(key), lambda meta: json.dumps([meta]) if as_list else json.dumps({**meta, field: value})
    )
    store.write(key, data)
    store.write(LATEST_KEY, json.dumps({**pointer, f"{kind}_sha256": registry.sha256(data)}).encode())
    check_answer(handler.handle(day_event, Predictor(store)))


def test_a_warm_container_keeps_its_good_models_when_the_pointer_goes_bad(store):
    clock = [0.0]
    predictor = Predictor(store, ttl_seconds=1, clock=lambda: clock[0])
    version = predictor.version
    store.write(LATEST_KEY, b'{"version": null, "regime_sha256": 5}')
    clock[0] = 10.0
    day = load_day(store)
    answer = handler.handle({"context_rows": day.context_rows}, predictor)
    assert answer["regime"]["model_source"] == "trained" and answer["regime"]["model_version"] == version


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


raw_json = st.one_of(
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.sampled_from([nested(40), nested(200_000), b"{not json", b"", b"\xff\xfe", b'{"rows": {}}', b'{"date": 5}']),
    st.binary(max_size=40),
)


@FUZZ
@given(name=st.sampled_from(["context.json", "features.json"]), data=raw_json, older=st.booleans())
def test_fuzzed_daily_json_never_breaks_the_scheduled_lambda(trained_store, store, monkeypatch, name, data, older):
    from trader_ml.schema import daily_key

    days = sorted(k.split("date=")[1][:10] for k in store.list("data/daily/") if k.endswith(name))
    day = days[-5] if older else days[-1]  # the served day, or one of the days before it that it reads
    pristine = trained_store.read(daily_key(day, name))
    store.write(daily_key(day, name), data)
    try:
        monkeypatch.setattr(handler, "_predictor", Predictor(store))
        monkeypatch.setattr(handler, "write_predictions", lambda store, answer: "not written in this test")
        check_answer(handler.handler({"source": "aws.events"}))
    finally:
        store.write(daily_key(day, name), pristine)  # examples share ``store``


@FUZZ
@given(
    data=raw_json,
    field=st.sampled_from(["regime_metrics", "baseline_metrics", "version", "timestamp", "gate", "health_metrics"]),
    value=json_values,
    whole=st.booleans(),
)
def test_fuzzed_manifests_are_listed_or_named_never_a_traceback(
    trained_store, store, capsys, data, field, value, whole
):
    from trader_ml.cli import main

    version = registry.read_latest(trained_store)[0]["version"]
    key = registry.manifest_key(version)
    if not whole:  # one field of the real manifest changed
        data = json.dumps({**json.loads(trained_store.read(key)), field: value}, allow_nan=True).encode()
    store.write(key, data)
    try:
        assert main(["models", "list", "--store", store.url]) in (0, 2)
        printed = capsys.readouterr()
        assert "Traceback" not in printed.err and len(printed.err.strip().splitlines()) <= 1
    finally:
        store.write(key, trained_store.read(key))


def with_outputs(data: bytes, order, drop: int, dims) -> bytes:
    """The artifact with its graph outputs reordered, the last ``drop`` removed, and the first
    output's declared shape replaced by ``dims``."""
    model = onnx.load_from_string(data)
    outputs = [model.graph.output[i] for i in order if i < len(model.graph.output)]
    outputs = outputs[: max(len(outputs) - drop, 1)]
    copies = [onnx.ValueInfoProto() for _ in outputs]
    for copy, original in zip(copies, outputs, strict=True):
        copy.CopyFrom(original)
    if dims is not None:
        shape = copies[0].type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            entry = shape.dim.add()
            if isinstance(d, int):
                entry.dim_value = d
            else:
                entry.dim_param = d
    del model.graph.output[:]
    model.graph.output.extend(copies)
    return model.SerializeToString()


@FUZZ
@given(
    kind=st.sampled_from(["regime", "health"]),
    order=st.permutations([0, 1, 2]),
    drop=st.integers(0, 2),
    dims=st.one_of(st.none(), st.lists(st.one_of(st.integers(1, 20), st.just("batch")), max_size=3)),
)
def test_fuzzed_artifact_outputs_fall_back_never_crash(trained_store, store, day_event, kind, order, drop, dims):
    pointer, _ = registry.read_latest(trained_store)
    key = pointer[f"{kind}_model"]
    try:
        data = with_outputs(trained_store.read(key), order, drop, dims)
    except Exception:  # noqa: BLE001 - onnx refused to build this variant: nothing to serve
        return
    store.write(key, data)
    store.write(LATEST_KEY, json.dumps({**pointer, f"{kind}_sha256": registry.sha256(data)}).encode())
    try:
        answer = handler.handle(day_event, Predictor(store))
        check_answer(answer)
        part = answer["regime"] if kind == "regime" else next(iter(answer["health"].values()))
        if part["model_source"] == "trained":  # served only when what serving reads is what it declared
            assert len(part["regime_embedding" if kind == "regime" else "latent"]) in (8, 16)
    finally:
        store.write(key, trained_store.read(key))
        store.write(LATEST_KEY, trained_store.read(LATEST_KEY))


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(JSON_VALUES, min_size=2, max_size=2), min_size=1, max_size=4))
@example([[math.inf, 0.0]])
@example([[-1e39, None]])
@example([[True, 1]])
@example([[10**400, 1.5]])
@example([[1, 2.5], [None, -3]])
def test_rows_read_in_one_numpy_call_agree_with_the_value_by_value_check(values):
    """The fast path of as_matrix (one numpy call for plain numbers) accepts and refuses exactly
    what the value-by-value check does, with the same matrix or the same message. Bounds are
    wide so only the type and float32 checks decide."""
    from trader_ml.serving import artifacts

    columns = ["spy_return_1d", "spy_vol_21d"]
    rows = [dict(zip(columns, row, strict=True)) for row in values]

    def checked():
        return [[artifacts._number(v, c, "rows") for v, c in zip(row, columns, strict=True)] for row in values]

    try:
        expected = checked()
    except artifacts.ArtifactError as e:
        with pytest.raises(artifacts.ArtifactError) as raised:
            artifacts._as_floats(rows, columns, "rows")
        assert str(raised.value) == str(e)
        return
    got = artifacts._as_floats(rows, columns, "rows")
    assert got.shape == (len(rows), 2)
    assert [[None if math.isnan(v) else v for v in row] for row in got.tolist()] == [
        [None if math.isnan(v) else v for v in row] for row in expected
    ]
