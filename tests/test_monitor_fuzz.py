"""The files only the monitor used to read, damaged every way: answer files, their day folders,
monitoring/latest.json and a manifest's monitoring fields. ``monitor`` and ``models list`` never
raise a traceback and name the damage; ``train`` always trains, judges and publishes, and says
what of the live record it could not read."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trader_ml import registry
from trader_ml.cli import main
from trader_ml.monitor.record import live_record
from trader_ml.schema import predictions_key
from trader_ml.serving.daily import stored_days
from trader_ml.serving.handler import daily_answer
from trader_ml.serving.predictor import Predictor
from trader_ml.store import LocalStore

from .conftest import TODAY, copy_of
from .strategies import json_values as shared_json_values
from .strategies import scalars as shared_scalars

SERVED = 25
# Each example scores a live record (an HMM fit for the labels among it): a dozen, and a few runs of the job.
# Derandomized: the same examples every run, so CI judges the code, not the draw (a new draw
# found a list where an object belongs once; a case of its own keeps it tested).
FUZZ = settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = shared_scalars(10**30, [7.5, -0.1, 0.5, 1.0])
json_values = shared_json_values(scalars)
# Days a folder may carry: absurd but valid dates, dates before the store, a day the store holds.
odd_days = st.sampled_from(["9999-12-31", "0001-01-01", "1900-01-01", "2099-06-30", "2007-06-01"])


@pytest.fixture(scope="module")
def served(trained_store, tmp_path_factory) -> tuple[LocalStore, list[str]]:
    """The trained store with its last SERVED days answered and written, as the schedule does."""
    store = copy_of(trained_store, tmp_path_factory.mktemp("fuzz") / "store")
    days = stored_days(store)[-SERVED:]
    predictor = Predictor(store, ttl_seconds=3600)
    for day in days:
        daily_answer(predictor, day, write=True)
    return store, days


def _nested_paths(value, path=()):
    """Every place inside a JSON value where another value could stand."""
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _nested_paths(inner, (*path, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _nested_paths(inner, (*path, i))


def _replaced(value, path, new):
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


@st.composite
def damage(draw, answer: dict, days: list[str]) -> list[tuple[str, bytes | None]]:
    """A few writes that damage a served store's monitoring files (None: delete the key)."""
    writes: list[tuple[str, bytes | None]] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["answer", "folder", "record", "manifest"]))
        if kind == "answer":  # one value anywhere inside a real answer replaced
            paths = list(_nested_paths(answer))
            path = paths[draw(st.integers(0, len(paths) - 1))]
            day = draw(st.sampled_from(days))
            body = _replaced({**answer, "date": day}, path, draw(json_values))
            writes.append((predictions_key(day), json.dumps(body).encode()))
        elif kind == "folder":  # a valid answer in a folder of an absurd day, or off the layout
            day = draw(odd_days)
            key = draw(st.sampled_from([predictions_key(day), f"predictions/old/date={days[0]}/predictions.json"]))
            writes.append((key, json.dumps({**answer, "date": day}).encode()))
        elif kind == "record":
            writes.append(("monitoring/latest.json", json.dumps(draw(json_values)).encode()))
        else:
            field = draw(st.sampled_from(sorted(registry.MONITORING_FIELDS)))
            writes.append((f"manifest:{field}", json.dumps(draw(json_values)).encode()))
    return writes


def apply(store: LocalStore, writes: list[tuple[str, bytes | None]]) -> None:
    version = registry.read_latest(store)[0]["version"]
    for key, data in writes:
        if key.startswith("manifest:"):
            manifest = registry.read_manifest(store, version)
            manifest[key.removeprefix("manifest:")] = json.loads(data)
            store.write(registry.manifest_key(version), json.dumps(manifest).encode())
        else:
            store.write(key, data)


def fresh_copy(store: LocalStore) -> tuple[LocalStore, Path]:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    return copy_of(store, folder / "store"), folder


@contextlib.contextmanager
def private_copy(store: LocalStore) -> Iterator[LocalStore]:
    """A copy of ``store`` for one example or test, removed after it."""
    copy, folder = fresh_copy(store)
    try:
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _answer(served_store: LocalStore, day: str) -> dict:
    return json.loads(served_store.read(predictions_key(day)))


@given(data=st.data())
@FUZZ
@example(data=None)  # the probe's two cases, always tried
def test_monitor_and_models_list_name_the_damage_and_go_on(served, data, capsys):
    store, days = served
    if data is None:
        writes = [
            (predictions_key("9999-12-31"), json.dumps({**_answer(store, days[0]), "date": "9999-12-31"}).encode()),
            ("manifest:input_profile", b'"not an object"'),
        ]
    else:
        writes = data.draw(damage(_answer(store, days[0]), days))
    copy, folder = fresh_copy(store)
    try:
        apply(copy, writes)
        capsys.readouterr()
        assert main(["monitor", "--store", copy.url, "--json", "--no-write"]) == 0  # no traceback, whatever the files
        record = json.loads(capsys.readouterr().out)
        assert record["answers"]["last"] is None or record["answers"]["last"] <= days[-1]
        for reason in record["answers"]["damaged"].values():
            assert "(damaged)" in reason or "outside the days" in reason or "not where answers" in reason
        assert main(["models", "list", "--store", copy.url]) in (0, 2)
        version = registry.read_latest(copy)[0]["version"]
        assert main(["models", "show", version, "--store", copy.url]) in (0, 2)
        capsys.readouterr()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_probes_two_cases_are_named(served, capsys):
    store, days = served
    with private_copy(store) as copy:
        apply(
            copy,
            [
                (predictions_key("9999-12-31"), json.dumps({**_answer(store, days[0]), "date": "9999-12-31"}).encode()),
                ("manifest:input_profile", b'"not an object"'),
            ],
        )
        record = live_record(copy, today=TODAY)
        assert "outside the days this store can hold" in record["answers"]["damaged"]["9999-12-31"]
        assert record["answers"]["last"] == days[-1]  # the absurd day is not the newest answer
        for kind in registry.KINDS:
            assert (
                "drift cannot be checked" in record["drift"][kind]["note"]
                and "input_profile" in record["drift"][kind]["note"]
            )
        version = registry.read_latest(copy)[0]["version"]
        assert main(["models", "show", version, "--store", copy.url]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["monitoring_checks"]["input_profile"].startswith("DAMAGED")


@pytest.fixture(scope="module")
def candidate(served):
    """What a run on the served store learns, trained once: the fuzzed runs judge and publish it."""
    from trader_ml.release import job

    store, _ = served
    options = job.TrainOptions(store=store.url, max_days=600, epochs=1, progress=False)
    context, features = job.load_data(store, options)
    return job.train_candidate(options, store, context, features, lambda _: None)


def run_options(store: LocalStore, folder: Path):
    """The release job's options for a run on a fuzzed copy: forced, since the data is the champion's."""
    from trader_ml.release import job

    return job.TrainOptions(
        store=store.url, max_days=600, epochs=1, force=True, progress=False, today=TODAY, output_dir=str(folder / "out")
    )


@given(data=st.data())
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(data=None)
def test_train_always_trains_judges_and_publishes(served, candidate, data, monkeypatch, tmp_path_factory):
    from trader_ml.release import job

    store, days = served
    if data is None:
        writes = [
            (predictions_key("9999-12-31"), json.dumps({**_answer(store, days[0]), "date": "9999-12-31"}).encode()),
            ("manifest:input_profile", b'"not an object"'),
            ("manifest:champion_live_record", b"[1, 2]"),
            ("manifest:training_fingerprint", b"{}"),
        ]
    else:
        writes = data.draw(damage(_answer(store, days[0]), days))
    monkeypatch.setattr(job, "train_candidate", lambda *args: candidate)
    copy, folder = fresh_copy(store)
    try:
        apply(copy, writes)
        outcome = job.run_training(run_options(copy, folder), log=lambda _: None)
        assert outcome.version is not None and outcome.decisions  # trained, judged, published
        manifest = registry.read_manifest(copy, outcome.version)
        live = manifest["champion_live_record"]
        assert live is not None
        report = copy.read(registry.report_key(outcome.version)).decode()
        assert "Live record of the outgoing champion" in report
        if data is None:
            assert "9999-12-31" in live["answers"]["damaged"]
            assert "drift cannot be checked" in live["drift"]["health"]["note"]
            assert "unreadable answer file 9999-12-31" in report and "drift cannot be checked" in report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_live_record_that_fails_outright_costs_its_section_alone(served, candidate, monkeypatch):
    """Whatever breaks inside the live record, the run trains, judges and publishes, and the
    manifest and the report say the record could not be read and why."""
    from trader_ml.release import job

    store, _ = served
    monkeypatch.setattr(job, "train_candidate", lambda *args: candidate)

    def broken(*args, **kwargs):
        raise ValueError("could not broadcast input array from shape (0,50) into shape (19,50)")

    monkeypatch.setattr(job, "live_record", broken)
    copy, folder = fresh_copy(store)
    try:
        outcome = job.run_training(run_options(copy, folder), log=lambda _: None)
        live = registry.read_manifest(copy, outcome.version)["champion_live_record"]
        assert live == {
            "unavailable": "ValueError: could not broadcast input array from shape (0,50) into shape (19,50)"
        }
        report = copy.read(registry.report_key(outcome.version)).decode()
        assert "The live record could not be read: ValueError: could not broadcast" in report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_day_answered_twice_is_scored_once(served):
    store, days = served
    with private_copy(store) as copy:
        copy.write(f"predictions/old/date={days[3]}/predictions.json", copy.read(predictions_key(days[3])))
        record = live_record(copy, today=TODAY)
        assert record["answers"]["days"] == SERVED
        assert (
            "not where answers are written"
            in record["answers"]["damaged"][f"predictions/old/date={days[3]}/predictions.json"]
        )


def test_thousands_of_answers_are_read(served):
    """Four thousand answer files (every one a copy of a real answer on a stored day or not): no
    frame of the live record breaks on the count."""
    store, days = served
    with private_copy(store) as copy:
        answer = _answer(store, days[0])
        start = dt.date(2007, 1, 2)
        items = []
        for i in range(4000):
            day = (start + dt.timedelta(days=i % 540)).isoformat()
            items.append((predictions_key(day), json.dumps({**answer, "date": day}).encode()))
        copy.write_many(dict(items).items())
        record = live_record(copy, today=TODAY)
        assert record["answers"]["days"] >= SERVED and record["answers"]["not_stored"]  # weekends are not stored days


def test_impossible_answers_are_damage_and_a_future_day_is_not_the_newest(served):
    store, days = served
    with private_copy(store) as copy:
        broken = {}
        for day, score in zip(days[5:9], [7.5, True, -0.1, "0.5"], strict=True):
            answer = _answer(store, day)
            answer["health"][sorted(answer["health"])[0]]["health_score"] = score
            copy.write(predictions_key(day), json.dumps(answer).encode())
            broken[day] = score
        copy.write(
            predictions_key("2099-06-30"), json.dumps({**_answer(store, days[0]), "date": "2099-06-30"}).encode()
        )
        record = live_record(copy, today=TODAY)
        for day in broken:
            assert "health_score" in record["answers"]["damaged"][day]
        assert "outside the days" in record["answers"]["damaged"]["2099-06-30"]
        assert record["answers"]["last"] == days[-1] and record["answers"]["days"] == SERVED - len(broken)


def test_lists_where_objects_belong_are_damage(served, capsys):
    """An input profile, test windows or a day's health answers written as lists (the shapes'
    ``Each`` once let a list through, and the readers then called ``.get`` on it)."""
    store, days = served
    with private_copy(store) as copy:
        answer = _answer(store, days[2])
        copy.write(predictions_key(days[2]), json.dumps({**answer, "health": list(answer["health"].values())}).encode())
        apply(copy, [("manifest:input_profile", b"[{}]"), ("manifest:test_windows", b"[null]")])
        assert main(["monitor", "--store", copy.url, "--json", "--no-write"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert "health: expected an object, found list" in record["answers"]["damaged"][days[2]]
        assert "input_profile: expected an object, found list" in record["drift"]["regime"]["note"]
