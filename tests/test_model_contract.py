"""Every model class through the same checks: it fits, reports against its baselines, exports an
ONNX file that computes what PyTorch computes, saves the config it was built with, and answers
the training guide's dict through the serving code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trader_ml.models.health import HealthModelConfig
from trader_ml.models.regime import RegimeExport, RegimeModelConfig, default_layers
from trader_ml.schema import (
    ASSET_FEATURES,
    BEHAVIORS,
    HEALTH_LATENT_DIM,
    HEALTH_TYPES,
    REGIME_EMBEDDING_DIM,
    REGIME_TYPES,
    REGIMES,
    VOL_BUCKETS,
)
from trader_ml.serving.artifacts import HealthModel, RegimeModel
from trader_ml.training.export import PARITY_TOLERANCE, parity_gap
from trader_ml.training.health import HealthTrainConfig, health_artifact, train_health
from trader_ml.training.loop import FitConfig
from trader_ml.training.regime import RegimeTrainConfig, regime_artifact, train_regime

MODELS = [("regime", t) for t in REGIME_TYPES] + [("health", t) for t in HEALTH_TYPES]


@dataclasses.dataclass
class Contract:
    """What each model kind gives the shared checks."""

    result: object
    data: bytes
    metadata: dict
    torch_module: object
    input_name: str
    inputs: np.ndarray
    served: object


@pytest.fixture(scope="module", params=MODELS, ids=[f"{kind}-{t}" for kind, t in MODELS])
def contract(request, synthetic_context, synthetic_features) -> Contract:
    kind, model_type = request.param
    fit = FitConfig(epochs=2, batch_size=128, patience=2)
    if kind == "regime":
        context, truth = synthetic_context
        model = RegimeModelConfig(model_type=model_type, num_layers=default_layers(model_type))
        result = train_regime(context, RegimeTrainConfig(model=model, fit=fit), truth=truth, progress=False)
        data, metadata = regime_artifact(result)
        module, name, inputs = RegimeExport(result.model).eval(), "context_window", result.test_inputs
        return Contract(result, data, metadata, module, name, inputs, RegimeModel.from_bytes(data))
    features, truth = synthetic_features
    config = HealthTrainConfig(
        model=HealthModelConfig(model_type=model_type), fit=dataclasses.replace(fit, batch_size=256)
    )
    result = train_health(features, config, truth=truth, progress=False)
    data, metadata = health_artifact(result)
    return Contract(result, data, metadata, result.model, "features", result.test_inputs, HealthModel.from_bytes(data))


def test_it_reports_itself_and_its_baselines_on_the_same_window(contract):
    metrics = contract.result.metrics
    assert {"model", "baseline", "test_window", "warnings"} <= set(metrics)
    size = "days" if "f1_macro" in metrics["model"] else "rows"  # regime: test days; health: test rows
    assert metrics["model"][size] == metrics["baseline"][size] == metrics["test_window"][size] > 0
    for column in ("model", "baseline"):
        if "f1_macro" in metrics[column]:
            assert 0 <= metrics[column]["f1_macro"] <= 1 and 0 <= metrics[column]["ece"] <= 1
        else:
            assert -1 <= metrics[column]["test_health_correlation"] <= 1 and 0 <= metrics[column]["auc"] <= 1


def test_the_onnx_file_computes_what_pytorch_computes(contract):
    assert contract.metadata["parity_max_abs_diff"] <= PARITY_TOLERANCE
    for size in (1, 64):
        batch = np.ascontiguousarray(contract.inputs[:size])
        assert parity_gap(contract.torch_module, contract.data, contract.input_name, [batch]) <= PARITY_TOLERANCE


def test_the_saved_config_is_the_one_it_was_built_with(contract):
    assert contract.metadata["model_config"] == dataclasses.asdict(contract.result.model.config)
    assert contract.metadata["fit_config"] == dataclasses.asdict(contract.result.config.fit)
    assert contract.served.metadata["model_config"]["model_type"] == contract.result.config.model.model_type


def test_it_answers_the_training_guide_s_dict(contract):
    if isinstance(contract.served, RegimeModel):
        out = contract.served.predict(contract.inputs[-1])
        assert set(out) == {"regime_label", "regime_probs", "regime_embedding"}
        assert list(out["regime_probs"]) == list(REGIMES)
        assert all(type(p) is float and 0 <= p <= 1 for p in out["regime_probs"].values())
        assert sum(out["regime_probs"].values()) == pytest.approx(1.0, abs=1e-6)
        assert out["regime_label"] == max(out["regime_probs"], key=out["regime_probs"].get)
        assert len(out["regime_embedding"]) == REGIME_EMBEDDING_DIM
        assert all(type(v) is float for v in out["regime_embedding"])
        return
    rows = [
        dict(zip(ASSET_FEATURES, map(float, r[:10]), strict=True), symbol=f"S{i}")
        for i, r in enumerate(contract.result.test_rows[:5])
    ]
    answers, skipped, refused = contract.served.predict(rows)
    assert skipped == [] and refused == {} and list(answers) == [f"S{i}" for i in range(5)]
    for out in answers.values():
        assert set(out) == {"health_score", "vol_bucket", "behavior", "latent"}
        assert type(out["health_score"]) is float and 0.0 <= out["health_score"] <= 1.0
        assert out["vol_bucket"] in VOL_BUCKETS and out["behavior"] in BEHAVIORS
        assert len(out["latent"]) == HEALTH_LATENT_DIM and all(type(v) is float for v in out["latent"])
