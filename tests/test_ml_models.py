"""models: the networks themselves (the training guide's ``python -m pytest tests/test_ml_models.py``).

Each network can learn (it overfits a tiny batch) and reads only what it may: a regime
network's state for day t never depends on the days after t.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trader_ml.models.health import HealthModelConfig, HealthNet, health_loss
from trader_ml.models.regime import RegimeModelConfig, build_regime_model
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES
from trader_ml.training.health import predict_health
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
    model.inputs.fit(values)

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


@pytest.mark.parametrize("model_type", ["gru", "transformer"])
def test_a_day_s_state_ignores_the_days_after_it(synthetic_context, model_type):
    """The GRU reads forward only; the Transformer's causal mask keeps day t from attending to
    later days. Changing the window's last 20 days leaves the states of the days before them."""
    context, _ = synthetic_context
    values = context[list(CONTEXT_FEATURES)].to_numpy(np.float32)
    x = torch.as_tensor(windows(values, np.arange(100, 108), 63))
    seed_everything(0)
    model = build_regime_model(RegimeModelConfig(model_type=model_type, num_layers=2)).eval()
    model.inputs.fit(values)
    changed = x.clone()
    changed[:, -20:] = changed[:, -20:] * -5.0 + 1.0
    with torch.no_grad():
        before, after = model.states(x), model.states(changed)
    torch.testing.assert_close(before[:, :-20], after[:, :-20], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, -20:], after[:, -20:])  # the changed days did change


@pytest.mark.parametrize("model_type", ["autoencoder", "vae"])
def test_health_net_overfits_a_tiny_batch(synthetic_features, model_type):
    features, _ = synthetic_features
    x = features[list(ASSET_FEATURES)].to_numpy(np.float32)[:32]
    y = np.tile([0.0, 1.0], 16).astype(np.float32)
    seed_everything(0)
    model = HealthNet(HealthModelConfig(model_type=model_type, dropout=0.0, kl_weight=1e-4))
    model.inputs.fit(x)
    fit(
        model,
        lambda net, b: health_loss(net, *b),
        (x, y),
        (x, y),
        FitConfig(epochs=400, batch_size=32, learning_rate=3e-3, patience=400),
        progress=False,
    )
    probability, _, error = predict_health(model, x)
    assert ((probability > 0.5) == (y > 0.5)).all()
    assert error.mean() < 0.1
