"""models: the networks themselves (the training guide's ``python -m pytest tests/test_ml_models.py``).

Each network can learn (it overfits a tiny batch) and reads only what it may: a regime
network's state for day t never depends on the days after t.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trader_ml.health_inputs import MODEL_INPUTS, frame_raw, model_inputs
from trader_ml.models.health import HealthModelConfig, HealthNet
from trader_ml.models.regime import RegimeModelConfig, build_regime_model
from trader_ml.schema import CONTEXT_FEATURES
from trader_ml.training.health import HealthLoss, predict_health
from trader_ml.training.loop import FitConfig, fit, seed_everything
from trader_ml.training.regime import predict_regimes, windows


@pytest.mark.parametrize("model_type", ["gru", "transformer"])
def test_regime_net_overfits_a_tiny_batch(synthetic_context, model_type):
    context, _ = synthetic_context
    values = context[list(CONTEXT_FEATURES)].to_numpy(np.float32)
    rng = np.random.default_rng(0)
    ends = rng.choice(np.arange(70, len(values)), size=10, replace=False)
    x = windows(values, ends, 63)
    y = np.tile(np.arange(5), 2)[:, None].repeat(21, axis=1)  # every class, whole filter span
    seed_everything(0)
    config = RegimeModelConfig(model_type=model_type, num_layers=1, feature_dropout=0.0, dropout=0.0)
    model = build_regime_model(config)
    model.fit_inputs(values, x)

    def loss_fn(net, batch):
        logits = net.daily_logits(batch[0])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 5), batch[1].reshape(-1))

    result = fit(
        model,
        loss_fn,
        (x, y),
        (x, y),
        FitConfig(epochs=300, batch_size=10, learning_rate=3e-3, patience=300),
        progress=False,
    )
    assert result.history[-1]["val_loss"] < 0.05
    probs, _ = predict_regimes(model, x)
    assert (probs.argmax(axis=1) == y[:, -1]).all()


def _later_days_changed(x: torch.Tensor, first: int, scale: float, shift: float) -> torch.Tensor:
    changed = x.clone()
    changed[:, first:] = changed[:, first:] * scale + shift
    changed[:, first:, 0] = changed[:, first:, 0].clamp(min=-0.5)  # still a possible daily return
    return changed


def _states_of_earlier_days_stay(model, x: torch.Tensor, first: int, scale: float, shift: float) -> None:
    changed = _later_days_changed(x, first, scale, shift)
    with torch.no_grad():
        for part in (model.day_inputs, model.states):
            before, after = part(x), part(changed)
            torch.testing.assert_close(before[:, :first], after[:, :first], rtol=0, atol=1e-5)
        # Each of the last filter days' regime evidence, which the filter reads.
        earlier = first - (x.shape[1] - model.head.filter_days)
        if earlier > 0:
            before, after = model.daily_logits(x), model.daily_logits(changed)
            torch.testing.assert_close(before[:, :earlier], after[:, :earlier], rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def causal_windows(synthetic_context):
    context, _ = synthetic_context
    values = context[list(CONTEXT_FEATURES)].to_numpy(np.float32)
    return values, torch.as_tensor(windows(values, np.arange(100, 104), 63))


@pytest.fixture(scope="module", params=["gru", "transformer"])
def fitted_net(request, causal_windows):
    values, x = causal_windows
    seed_everything(0)
    model = build_regime_model(RegimeModelConfig(model_type=request.param, num_layers=2)).eval()
    model.fit_inputs(values, x.numpy())
    return model


def _later_days_cases(count: int = 25) -> list[tuple[int, float, float]]:
    """(first replaced day, scale, shift): both ends of the window, then seeded random draws.
    Plain numpy rather than hypothesis, so the training guide's test command needs only pytest."""
    rng = np.random.default_rng(0)
    drawn = zip(
        rng.integers(1, 63, count - 2), rng.uniform(-5, 5, count - 2), rng.uniform(-1, 1, count - 2), strict=True
    )
    return [(1, -5.0, 1.0), (62, 5.0, -1.0), *((int(f), float(a), float(b)) for f, a, b in drawn)]


@pytest.mark.parametrize(("first", "scale", "shift"), _later_days_cases())
def test_a_day_s_inputs_and_state_ignore_the_days_after_it(fitted_net, causal_windows, first, scale, shift):
    """The trend inputs weigh only earlier days, the GRU reads forward only, and the
    Transformer's causal mask keeps day t from attending to later days: whatever replaces the
    window's days from ``first`` on, the inputs and states of the days before stay."""
    _states_of_earlier_days_stay(fitted_net, causal_windows[1], first, scale, shift)


def test_the_causality_check_catches_a_leak(fitted_net, causal_windows):
    """The same check fails on a variant whose trend weights also read the next days."""
    _, x = causal_windows
    trend = fitted_net.trend
    honest = trend.weights.clone()
    try:
        trend.weights.copy_(honest + honest.transpose(-1, -2))  # each day also weighs the days after it
        with pytest.raises(AssertionError):
            _states_of_earlier_days_stay(fitted_net, x, 40, -3.0, 0.5)
    finally:
        trend.weights.copy_(honest)


@pytest.mark.parametrize("model_type", ["autoencoder", "vae"])
def test_health_net_overfits_a_tiny_batch(synthetic_features, model_type):
    features, _ = synthetic_features
    x = model_inputs(frame_raw(features), features["date"].to_numpy()).astype(np.float32)[:32]
    y = np.tile([0.0, 1.0], 16).astype(np.float32)
    seed_everything(0)
    model = HealthNet(HealthModelConfig(model_type=model_type, dropout=0.0))
    model.inputs.fit(x)
    fit(
        model,
        lambda net, b: HealthLoss(kl_weight=1e-4)(net, *b),
        (x, y),
        (x, y),
        FitConfig(epochs=400, batch_size=32, learning_rate=3e-3, patience=400),
        progress=False,
    )
    probability, _, error = predict_health(model, x)
    assert ((probability > 0.5) == (y > 0.5)).all()
    assert error.mean() < 0.1


def test_a_model_whose_scaler_was_never_fit_is_not_exported():
    """An unfit scaler is 0/1 and would feed raw values: the export refuses instead of shipping it."""
    from trader_ml.training.export import ExportError, to_onnx

    model = HealthNet(HealthModelConfig())
    x = np.zeros((2, len(MODEL_INPUTS)), dtype=np.float32)
    with pytest.raises(ExportError, match="input scaler inputs was never fit"):
        to_onnx(model, x, "features", ["health_score", "latent", "recon_error"], {}, [x])
    assert not model.inputs.fitted and model.inputs.fit(x + 1).fitted
