"""serving.onnxfile and the artifact checks: no file outside an artifact is ever read, and a model
whose outputs are not what serving reads is refused at load or fails only its own answer."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from trader_ml import registry
from trader_ml.health_inputs import MODEL_INPUTS
from trader_ml.schema import LATEST_KEY
from trader_ml.serving import onnxfile
from trader_ml.serving.artifacts import ArtifactError, HealthModel, RegimeModel
from trader_ml.serving.daily import load_day
from trader_ml.serving.handler import daily_answer
from trader_ml.serving.onnxfile import MalformedModel, UnsafeModel, check_self_contained
from trader_ml.serving.predictor import Predictor
from trader_ml.store import LocalStore

from .conftest import copy_of

SECRET = b"aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY!!"  # 64 bytes: 16 float32s


def external(tensor: TensorProto, location: str, length: int) -> None:
    """Point ``tensor``'s values at a file beside the model, as onnx's external data does."""
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def crafted_health(data: bytes) -> bytes:
    """The trained health artifact, its latent's bias read from ``secret.txt`` in the working folder."""
    model = onnx.load_from_string(data)
    external(next(t for t in model.graph.initializer if t.name == "to_latent.bias"), "secret.txt", len(SECRET))
    return model.SerializeToString()


@pytest.fixture
def store(trained_store, tmp_path) -> LocalStore:
    return copy_of(trained_store, tmp_path / "copy")


def with_function_default(data: bytes) -> bytes:
    """The trained health artifact plus an unused local function whose attribute default is a
    tensor read from ``secret.txt``: nothing in the graph calls it, so only a walk that reads
    functions' ``attribute_proto`` finds it."""
    model = onnx.load_from_string(data)
    default = helper.make_tensor("default", TensorProto.FLOAT, [16], np.zeros(16).tolist())
    external(default, "secret.txt", len(SECRET))
    attribute = helper.make_attribute("value", default)
    node = helper.make_node("Constant", [], ["y"], value_float=0.0)
    function = helper.make_function(
        "local.trader", "unused", [], ["y"], [node], [helper.make_opsetid("", 17)], attribute_protos=[attribute]
    )
    model.functions.append(function)
    return model.SerializeToString()


def serve_in_place(store: LocalStore, data: bytes) -> dict:
    """The store's health artifact replaced by ``data`` (its sha256 updated), answered and written."""
    pointer, _ = registry.read_latest(store)
    store.write(pointer["health_model"], data)
    store.write(LATEST_KEY, json.dumps({**pointer, "health_sha256": registry.sha256(data)}).encode())
    return daily_answer(Predictor(store), write=True)


def test_an_artifact_reading_a_file_beside_it_is_refused_before_a_session(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    pointer, _ = registry.read_latest(store)
    data = crafted_health(store.read(pointer["health_model"]))
    # The attack is real: onnxruntime alone follows the relative path into the secret.
    leaked = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
        None, {"features": np.zeros((1, len(MODEL_INPUTS)), np.float32)}
    )
    assert leaked[1].tobytes()[:8] != b"\0" * 8
    with pytest.raises(ArtifactError, match="refused: a tensor keeps its values in an external file"):
        HealthModel.from_bytes(data)

    answer = serve_in_place(store, data)
    assert answer["regime"]["model_source"] == "trained"  # the other model is not taken down with it
    for health in answer["health"].values():
        assert health["model_source"] == "baseline" and "external file" in health["fallback_reason"]
    written = json.loads(store.read(answer["written"][0]))
    for health in written["health"].values():  # no served latent spells the file's bytes
        assert SECRET[:8] not in np.asarray(health["latent"], dtype=np.float32).tobytes()


def test_a_local_functions_attribute_default_in_an_external_file_is_refused(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    pointer, _ = registry.read_latest(store)
    data = with_function_default(store.read(pointer["health_model"]))
    with pytest.raises(UnsafeModel, match="external file"):
        check_self_contained(data)
    answer = serve_in_place(store, data)
    assert answer["regime"]["model_source"] == "trained"
    for health in answer["health"].values():
        assert health["model_source"] == "baseline" and "external file" in health["fallback_reason"]


def test_without_the_walk_onnxruntime_still_reads_no_file_beside_the_model(store, tmp_path, monkeypatch):
    """The second lock: with the protobuf walk switched off, the session's external-data folder
    (a path under os.devnull) makes the crafted artifact fail to load instead of leaking."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    monkeypatch.setattr("trader_ml.serving.artifacts.check_self_contained", lambda data: None)
    pointer, _ = registry.read_latest(store)
    data = crafted_health(store.read(pointer["health_model"]))
    with pytest.raises(ArtifactError, match="not a loadable ONNX model"):
        HealthModel.from_bytes(data)


def _tensor_holders() -> dict[str, dict[int, str]]:
    """From onnx's protobuf descriptors: every message reachable from ModelProto that can hold a
    TensorProto at any depth, and its fields of such messages (number -> message name)."""
    from google.protobuf.descriptor import FieldDescriptor
    from onnx import onnx_ml_pb2

    reachable: dict[str, object] = {}
    pending = [onnx_ml_pb2.ModelProto.DESCRIPTOR]
    while pending:
        message = pending.pop()
        if message.full_name not in reachable:
            reachable[message.full_name] = message
            pending += [f.message_type for f in message.fields if f.type == FieldDescriptor.TYPE_MESSAGE]
    holders = {"onnx.TensorProto"}
    while True:
        more = {
            name
            for name, message in reachable.items()
            if any(
                f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name in holders for f in message.fields
            )
        }
        if more <= holders:
            break
        holders |= more
    return {
        name: {
            f.number: f.message_type.full_name
            for f in reachable[name].fields
            if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name in holders
        }
        for name in holders
    }


def test_the_walk_covers_every_field_that_can_hold_a_tensor():
    kinds = {
        "onnx.ModelProto": onnxfile.MODEL,
        "onnx.GraphProto": onnxfile.GRAPH,
        "onnx.NodeProto": onnxfile.NODE,
        "onnx.AttributeProto": onnxfile.ATTRIBUTE,
        "onnx.TensorProto": onnxfile.TENSOR,
        "onnx.SparseTensorProto": onnxfile.SPARSE,
        "onnx.FunctionProto": onnxfile.FUNCTION,
        "onnx.TrainingInfoProto": onnxfile.TRAINING,
    }
    holders = _tensor_holders()
    assert set(holders) == set(kinds), "a message type that can hold a tensor has no entry in the walk"
    expected = {
        kinds[name]: {number: kinds[child] for number, child in fields.items()} for name, fields in holders.items()
    }
    assert expected == onnxfile.CHILDREN


def constant_model(tensor: TensorProto, in_subgraph: bool) -> bytes:
    """A tiny model whose one value comes from a Constant node, at the top or inside an If branch."""
    constant = helper.make_node("Constant", [], ["y"], value=tensor)
    if in_subgraph:
        branch = helper.make_graph(
            [constant], "branch", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
        )
        nodes = [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)]
        inputs = [helper.make_tensor_value_info("c", TensorProto.BOOL, [])]
    else:
        nodes, inputs = [constant], []
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph).SerializeToString()


@pytest.mark.parametrize("in_subgraph", [False, True])
def test_external_data_anywhere_in_the_file_is_found(in_subgraph):
    tensor = helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])
    check_self_contained(constant_model(tensor, in_subgraph))  # values inside: fine
    external(tensor, "secret.txt", 4)
    with pytest.raises(UnsafeModel, match="external file"):
        check_self_contained(constant_model(tensor, in_subgraph))


@pytest.mark.parametrize("data", [b"not an onnx model", b"\x0a\xff\xff\xff\xff\x0f", b"\x3a\x10abc"])
def test_bytes_that_are_no_protobuf_are_malformed(data):
    with pytest.raises(MalformedModel):
        check_self_contained(data)


def test_outputs_in_another_order_are_refused_at_load(trained_store):
    pointer, _ = registry.read_latest(trained_store)
    model = onnx.load_from_string(trained_store.read(pointer["regime_model"]))
    outputs = list(model.graph.output)
    del model.graph.output[:]
    model.graph.output.extend(reversed(outputs))
    with pytest.raises(ArtifactError, match=r"outputs \['regime_embedding', 'regime_probs'\] are not"):
        RegimeModel.from_bytes(model.SerializeToString())


def fake_health(metadata: str, batch_sum: bool = False, latent_dim: int = 16) -> bytes:
    """A hand-made health model with the real metadata. ``batch_sum``: its probability sums over
    the batch, so it answers one value whatever the batch (right at load, wrong on real days)."""
    width = len(json.loads(metadata)["model_inputs"])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2 if batch_sum else 1], [0, 1] if batch_sum else [1])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [width, latent_dim], np.zeros(width * latent_dim).tolist())
    shape = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("ReduceSum", ["features", "axes"], ["s"], keepdims=0),
        *([helper.make_node("Reshape", ["s", "one"], ["s1"])] if batch_sum else []),
        helper.make_node("Sigmoid", ["s1" if batch_sum else "s"], ["health_probability"]),
        helper.make_node("MatMul", ["features", "w"], ["latent"]),
        helper.make_node("Mul", ["features", "features"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axes1"], ["reconstruction_error"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "fake",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", width])],
        [
            helper.make_tensor_value_info("health_probability", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["batch", latent_dim]),
            helper.make_tensor_value_info("reconstruction_error", TensorProto.FLOAT, ["batch"]),
        ],
        [axes, weight, shape, helper.make_tensor("axes1", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"trader_ml": metadata})
    return model.SerializeToString()


@pytest.fixture(scope="module")
def health_metadata(trained_store) -> str:
    pointer, _ = registry.read_latest(trained_store)
    model = onnx.load_from_string(trained_store.read(pointer["health_model"]))
    return next(p.value for p in model.metadata_props if p.key == "trader_ml")


def test_a_declared_output_of_the_wrong_shape_is_refused_at_load(health_metadata):
    HealthModel.from_bytes(fake_health(health_metadata))  # the hand-made model itself is servable
    with pytest.raises(ArtifactError, match=r"output latent is tensor\(float\) of shape \['batch', 3\]"):
        HealthModel.from_bytes(fake_health(health_metadata, latent_dim=3))


def test_a_health_model_from_before_the_day_relative_inputs_still_serves_on_the_ten(store, health_metadata):
    """An artifact without ``model_inputs`` reads the ten features alone (its input is 10 wide)."""
    meta = json.loads(health_metadata)
    # fake_health reads its input width from model_inputs; the older metadata then has none.
    model = onnx.load_from_string(fake_health(json.dumps({**meta, "model_inputs": list(MODEL_INPUTS[:10])})))
    del meta["model_inputs"]
    helper.set_model_props(model, {"trader_ml": json.dumps(meta)})
    served = HealthModel.from_bytes(model.SerializeToString())
    assert not served.day_relative and served.input_shape() == (10,)
    answers, skipped, _ = served.predict(load_day(store).feature_rows)
    assert skipped == [] and all(0.0 <= a["health_score"] <= 1.0 for a in answers.values())


def test_a_model_that_answers_in_another_shape_fails_that_answer_and_the_baseline_serves(store, health_metadata):
    data = fake_health(health_metadata, batch_sum=True)
    model = HealthModel.from_bytes(data)  # one row at load: the right shape
    day = load_day(store)
    with pytest.raises(ArtifactError, match=r"output health_probability has shape \(1,\), not \(8,\)"):
        model.predict(day.feature_rows)
    pointer, _ = registry.read_latest(store)
    store.write(pointer["health_model"], data)
    store.write(LATEST_KEY, json.dumps({**pointer, "health_sha256": registry.sha256(data)}).encode())
    health, _, _ = Predictor(store).predict_health(day.feature_rows)
    assert all(a["model_source"] == "baseline" and "has shape (1,)" in a["fallback_reason"] for a in health.values())
