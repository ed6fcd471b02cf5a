"""Fit and judge the health model: forward-looking targets, a purged split by date, the baseline.

The score is worth serving only if it says something about the next 21 days, so every test
number compares it with what happened next, beside the heuristic and two one-feature scores.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from trader_ml.baselines import DEFAULT_HEALTH_RULES, baseline_health
from trader_ml.errors import InsufficientHistory, TraderMLError
from trader_ml.models.health import PRIOR_FEATURES, HealthModelConfig, HealthNet, prior_inputs
from trader_ml.schema import ASSET_FEATURES, BEHAVIORS, HEALTH_LATENT_DIM, VOL_BUCKETS
from trader_ml.training.export import artifact_header, parity_batches, to_onnx
from trader_ml.training.labels import HEALTH_HORIZON, health_targets
from trader_ml.training.loop import FitConfig, FitResult, fit, seed_everything
from trader_ml.training.metrics import health_metrics, per_date_rank_correlation
from trader_ml.training.options import TrainOptions
from trader_ml.training.pooling import POOL_BELOW_SYMBOLS, POOLED_SOURCE, pooled_rows
from trader_ml.training.split import Split, chronological_split

log = logging.getLogger(__name__)
CORRECTION_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # tried on validation days, smallest first
MIN_GAIN = 0.002  # a larger correction must beat a smaller one by this much on validation
MIN_DATES = 100  # dates with a known outcome needed to train, validate and test at all


@dataclass(frozen=True)
class HealthLoss:
    """Reconstruction MSE (or the VAE's ELBO) plus the weighted health cross-entropy."""

    health_weight: float = 1.0  # the health loss next to the reconstruction loss
    kl_weight: float = 0.01  # VAE only: the KL term of the ELBO

    def __call__(self, net: HealthNet, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        parts = net.parts(x)
        loss = ((parts.reconstruction - parts.standardized) ** 2).mean()
        if parts.log_var is not None:
            kl = -0.5 * (1 + parts.log_var - parts.latent**2 - parts.log_var.exp()).sum(dim=-1).mean()
            loss = loss + self.kl_weight * kl
        bce = torch.nn.functional.binary_cross_entropy_with_logits(parts.health_logit, target)
        return loss + self.health_weight * bce


@dataclass(frozen=True)
class HealthTrainConfig:
    model: HealthModelConfig = field(default_factory=HealthModelConfig)
    loss: HealthLoss = HealthLoss()
    fit: FitConfig = field(default_factory=lambda: FitConfig(batch_size=TrainOptions.health_batch_size))
    horizon: int = HEALTH_HORIZON
    # A universe with fewer symbols trains with the bundled sample's rows pooled in (0: never).
    pool_below_symbols: int = POOL_BELOW_SYMBOLS
    val_fraction: float = 0.15
    test_fraction: float = 0.15


def health_train_config(
    model_type: str = TrainOptions.health_type,
    epochs: int = TrainOptions.epochs,
    batch_size: int = TrainOptions.health_batch_size,
    seed: int = TrainOptions.seed,
    device: str = TrainOptions.device,
) -> HealthTrainConfig:
    """The configuration every entry point trains with (train, train-health, backtest)."""
    return HealthTrainConfig(
        model=HealthModelConfig(model_type=model_type),
        fit=FitConfig(epochs=epochs, batch_size=batch_size, seed=seed, device=device),
    )


def min_training_days(config: HealthTrainConfig) -> int:
    """Trading days of features a training window needs at least."""
    return MIN_DATES + 3 * config.horizon


@dataclass
class HealthTrainResult:
    model: HealthNet
    config: HealthTrainConfig
    fit: FitResult
    split: Split  # date positions of each part
    vol_boundaries: tuple[float, float]
    metrics: dict
    data_window: dict
    test_rows: np.ndarray  # (rows, features) raw test inputs, for export checks
    test_index: np.ndarray  # their row numbers in the features frame
    skipped_rows: int


def predict_health(model: HealthNet, x: np.ndarray, batch: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, latent, reconstruction error) of raw feature rows."""
    model.eval()
    outs: list[list[np.ndarray]] = [[], [], []]
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            for store, value in zip(outs, model(torch.tensor(x[lo : lo + batch])), strict=True):
                store.append(value.cpu().numpy())
    return tuple(np.concatenate(o) for o in outs)  # type: ignore[return-value]


def calibrate(model: HealthNet, x: np.ndarray, target: np.ndarray) -> None:
    """Platt scaling on validation rows: the score becomes a calibrated probability."""
    model.eval()
    with torch.no_grad():
        logits = model.parts(torch.as_tensor(x)).health_logit
    y = torch.as_tensor(target, dtype=torch.float32)
    params = torch.tensor([1.0, 0.0], requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=100)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * logits + params[1], y)
        loss.backward()
        return loss

    optimizer.step(closure)
    model.calibration.copy_(params.detach())


def fit_prior(model: HealthNet, x: np.ndarray, target: np.ndarray) -> None:
    """The volatility prior: a logistic regression of the target on log vol_21d and log vol_63d,
    fit on training rows before the network trains (L-BFGS, a few parameters)."""
    inputs = prior_inputs(torch.as_tensor(x))
    y = torch.as_tensor(target, dtype=torch.float32)
    params = torch.zeros(len(PRIOR_FEATURES) + 1, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs @ params[:-1] + params[-1], y)
        loss.backward()
        return loss

    optimizer.step(closure)
    model.prior.copy_(params.detach())


def choose_correction(model: HealthNet, x: np.ndarray, dates: np.ndarray, drawdown: np.ndarray) -> dict[str, float]:
    """Set ``correction_weight`` to the weight whose scores rank validation days best (mean daily
    Spearman with the forward drawdown); a larger weight must win by ``MIN_GAIN``. Returns each
    weight's validation correlation. One forward pass: before calibration the score ranks as its
    logit, prior + weight x correction."""
    model.eval()
    model.correction_weight.fill_(1.0)
    with torch.no_grad():
        rows = torch.as_tensor(x)
        prior = model.prior_logit(rows).numpy()
        correction = model.parts(rows).health_logit.numpy() - prior
    scores = {}
    best = None
    for weight in CORRECTION_WEIGHTS:
        scores[weight] = per_date_rank_correlation(dates, prior + weight * correction, drawdown)
        if best is None or scores[weight] > scores[best] + MIN_GAIN:
            best = weight
    model.correction_weight.fill_(best)
    return {str(w): round(float(v), 4) for w, v in scores.items()} | {"chosen": best}


def train_health(
    features: pd.DataFrame,
    config: HealthTrainConfig | None = None,
    truth: np.ndarray | None = None,
    progress: bool = True,
) -> HealthTrainResult:
    """Train on a validated features frame; ``truth`` (hidden state per row, higher healthier)
    adds the rank correlation with the simulator's truth."""
    config = config or HealthTrainConfig()
    target, drawdown = health_targets(features, config.horizon)
    known = ~np.isnan(target)
    skipped = int((~known).sum())
    if skipped:
        log.info(
            "health: %d of %d rows skipped: no known %d-day outcome (the last days, gaps, "
            "or fewer than 5 symbols that day)",
            skipped,
            len(target),
            config.horizon,
        )
    dates = pd.DatetimeIndex(features["date"])
    day_index, unique_days = pd.factorize(dates, sort=True)
    usable_days = np.unique(day_index[known])
    if len(usable_days) < MIN_DATES:
        raise InsufficientHistory(
            f"too short a history: {len(usable_days)} trading days with a known {config.horizon}-day outcome; "
            f"the health model needs at least {MIN_DATES} (about {min_training_days(config)} trading days "
            "of features for 5 or more symbols)"
        )
    split = chronological_split(usable_days, config.horizon, config.val_fraction, config.test_fraction)
    values = features[list(ASSET_FEATURES)].to_numpy(dtype=np.float32)

    def rows(days: np.ndarray) -> np.ndarray:
        return np.flatnonzero(known & np.isin(day_index, days))

    train, val, test = rows(split.train), rows(split.val), rows(split.test)
    if len(set(target[train].tolist())) < 2:
        raise TraderMLError("the training rows hold a single outcome: more symbols or a longer window are needed")
    train_x, train_y, pooled = values[train], target[train], 0
    if features["symbol"].nunique() < config.pool_below_symbols:
        pool, pool_target = pooled_rows(unique_days[split.val[0]], config.horizon)
        pooled = len(pool)
        train_x = np.concatenate([train_x, pool[list(ASSET_FEATURES)].to_numpy(dtype=np.float32)])
        train_y = np.concatenate([train_y, pool_target])
    seed_everything(config.fit.seed)
    model = HealthNet(config.model)
    model.inputs.fit(train_x)  # the scaler sees training rows only
    fit_prior(model, train_x, train_y)
    boundaries = tuple(float(b) for b in np.quantile(values[train, ASSET_FEATURES.index("vol_21d")], [1 / 3, 2 / 3]))
    y = target.astype(np.float32)

    def evaluate(net) -> dict[str, float]:
        probability, _, _ = predict_health(net, values[val])
        return {
            "val_auc": health_metrics(unique_days[day_index[val]], probability, target[val], drawdown[val])["auc"]
            or 0.0
        }

    result = fit(
        model,
        lambda net, batch: config.loss(net, *batch),
        (train_x, train_y.astype(np.float32)),
        (values[val], y[val]),
        config.fit,
        evaluate=evaluate,
        progress=progress,
        desc=f"health {config.model.model_type}",
    )
    model.cpu()
    correction = choose_correction(model, values[val], unique_days[day_index[val]], drawdown[val])
    calibrate(model, values[val], y[val])

    test_dates = unique_days[day_index[test]]
    truth_test = None if truth is None else np.asarray(truth, dtype=float)[test]
    probability, _, error = predict_health(model, values[test])

    def judge(score: np.ndarray, is_probability: bool) -> dict:
        return health_metrics(test_dates, score, target[test], drawdown[test], is_probability, truth_test)

    column = {name: values[test, ASSET_FEATURES.index(name)] for name in ("vol_63d", "drawdown_63d")}
    metrics = {
        "model": {**judge(probability, True), "test_recon_mse": float(error.mean())},
        "baseline": judge(baseline_health(values[test].astype(np.float64)), True),
        "-vol_63d": judge(-column["vol_63d"], False),
        "drawdown_63d": judge(column["drawdown_63d"], False),
        "test_window": {
            "first_date": str(test_dates.min().date()),
            "last_date": str(test_dates.max().date()),
            "days": int(len(split.test)),
            "rows": int(len(test)),
            "event_rate": float(1.0 - target[test].mean()),
        },
        "split": {
            "train_days": int(len(split.train)),
            "val_days": int(len(split.val)),
            "test_days": int(len(split.test)),
        },
        "skipped_rows": skipped,
        "training_rows": {
            "own": int(len(train)),
            "pooled": pooled,
            "pooled_from": POOLED_SOURCE if pooled else None,
        },
        "prior": {
            "features": list(PRIOR_FEATURES),
            "weights": [round(float(w), 4) for w in model.prior.tolist()],
            "val_correlation_by_correction_weight": correction,
        },
    }
    metrics["warnings"] = health_warnings(metrics, float(model.calibration[0]), float(probability.std()))
    return HealthTrainResult(
        model=model,
        config=config,
        fit=result,
        split=split,
        vol_boundaries=boundaries,  # type: ignore[arg-type]
        metrics=metrics,
        data_window={
            "first_date": str(dates.min().date()),
            "last_date": str(dates.max().date()),
            "rows": len(features),
            "symbols": int(features["symbol"].nunique()),
        },
        test_rows=values[test],
        test_index=test,
        skipped_rows=skipped,
    )


def health_warnings(metrics: dict, calibration_slope: float, score_std: float) -> list[str]:
    """What a user must hear before serving this model: it ranks worse than its heuristic on its
    own test window, or it is wrong-way round (a negative calibration slope)."""
    out = []
    model, baseline = metrics["model"]["test_health_correlation"], metrics["baseline"]["test_health_correlation"]
    if model < baseline:
        out.append(
            f"the health model ranks worse than its heuristic baseline on its own test window "
            f"(correlation with the forward drawdown {model:.3f} vs {baseline:.3f})"
        )
    if calibration_slope < 0:
        out.append(
            f"the health model is wrong-way round: its calibration slope is {calibration_slope:.3f} "
            f"(higher raw scores meant less healthy; scores vary by only {score_std:.3f})"
        )
    return out


def health_summary(metrics: dict) -> dict:
    """The training guide's latest.json fields, plus the baseline's on the same window."""
    model, baseline = metrics["model"], metrics["baseline"]
    out = {
        "test_recon_mse": model["test_recon_mse"],
        "test_health_correlation": model["test_health_correlation"],
        "test_auc": model["auc"],
        "test_brier": model["brier"],
        "baseline_test_health_correlation": baseline["test_health_correlation"],
        "baseline_test_auc": baseline["auc"],
        "baseline_test_brier": baseline["brier"],
    }
    if "truth_correlation" in model:
        out["truth_correlation"] = model["truth_correlation"]
        out["baseline_truth_correlation"] = baseline["truth_correlation"]
    return out


def health_artifact(result: HealthTrainResult) -> tuple[bytes, dict]:
    """(ONNX bytes, metadata) of a trained health model, parity-checked on real test rows."""
    model = result.model
    metadata = {
        **artifact_header("health"),
        "input_name": "features",
        "output_names": ["health_probability", "latent", "reconstruction_error"],
        "feature_order": list(ASSET_FEATURES),
        "latent_dim": HEALTH_LATENT_DIM,
        "horizon": result.config.horizon,
        "vol_buckets": list(VOL_BUCKETS),
        "vol_boundaries": list(result.vol_boundaries),
        "behaviors": list(BEHAVIORS),
        "rules": asdict(DEFAULT_HEALTH_RULES),
        "model_config": asdict(result.config.model),
        "fit_config": asdict(result.config.fit),
        "loss_config": asdict(result.config.loss),
        "scaler": {"mean": model.inputs.mean.tolist(), "scale": model.inputs.scale.tolist()},
        "calibration": model.calibration.tolist(),
        "prior": {"features": list(PRIOR_FEATURES), "weights": model.prior.tolist()},
        "correction_weight": float(model.correction_weight),
        "data_window": result.data_window,
        "training_rows": result.metrics["training_rows"],
        "test_window": result.metrics["test_window"],
        "metrics": health_summary(result.metrics),
    }
    data, gap = to_onnx(
        model,
        result.test_rows[:2],
        metadata["input_name"],
        metadata["output_names"],
        metadata,
        parity_batches(result.test_rows),
    )
    return data, {**metadata, "parity_max_abs_diff": gap}
