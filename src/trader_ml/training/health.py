"""Fit and judge the health model: prepare (targets, inputs, a purged split by date), fit,
calibrate on validation days, evaluate on test days.

The score claims to be the chance of not landing in the worst fifth over the next 21 days, so
every test number compares it with what happened next: as a probability against the base rate
and the calibrated references, and as a ranking beside the heuristic and -vol_63d.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from trader_ml.baselines import DEFAULT_HEALTH_RULES, baseline_health
from trader_ml.errors import InsufficientHistory, TraderMLError
from trader_ml.health_inputs import MODEL_INPUTS, RAW_COLUMNS, frame_raw, model_inputs
from trader_ml.models.health import (
    PRIOR_BLENDS,
    SMALL_UNIVERSE_BLEND,
    WIDE_BLEND,
    HealthModelConfig,
    HealthNet,
    blend_mix,
    prior_inputs,
)
from trader_ml.schema import ASSET_FEATURES, BEHAVIORS, HEALTH_LATENT_DIM, VOL_BUCKETS
from trader_ml.stats import log_loss_rows
from trader_ml.training.export import artifact_header, parity_batches, to_onnx
from trader_ml.training.gate import RANK_MARGIN
from trader_ml.training.health_references import BASE_RATE, REFERENCES, fit_references, logistic
from trader_ml.training.health_shrink import shrunk_platt, worst_year_shrink, year_gains
from trader_ml.training.labels import HEALTH_HORIZON, health_targets
from trader_ml.training.loop import FitConfig, FitResult, fit, seed_everything
from trader_ml.training.metrics import health_metrics, per_date_rank_correlation
from trader_ml.training.options import TrainOptions
from trader_ml.training.pooling import POOL_BELOW_SYMBOLS, POOLED_SOURCE, pooled_rows
from trader_ml.training.split import Split, chronological_split

log = logging.getLogger(__name__)
CORRECTION_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # tried on validation days, smallest first
MIN_GAIN = 0.0005  # validation log loss a larger correction must save over a smaller one
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
    test_rows: np.ndarray  # (rows, RAW_COLUMNS) raw test features
    test_inputs: np.ndarray  # (rows, MODEL_INPUTS) what the network read of them, for export checks
    test_index: np.ndarray  # their row numbers in the features frame
    skipped_rows: int
    references: dict  # name -> health_references.Reference, calibrated on the training rows


def predict_health(model: HealthNet, x: np.ndarray, batch: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, latent, reconstruction error) of input rows (MODEL_INPUTS order)."""
    model.eval()
    outs: list[list[np.ndarray]] = [[], [], []]
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            for store, value in zip(outs, model(torch.tensor(x[lo : lo + batch])), strict=True):
                store.append(value.cpu().numpy())
    return tuple(np.concatenate(o) for o in outs)  # type: ignore[return-value]


@dataclass
class Prepared:
    """A features frame as the health model reads it, split by date, targets known."""

    values: np.ndarray  # (rows, MODEL_INPUTS) float32
    raw: np.ndarray  # (rows, RAW_COLUMNS): what the reference rows read
    target: np.ndarray  # 1: not in the worst fifth of its day; NaN unknown
    drawdown: np.ndarray
    row_date: pd.DatetimeIndex
    split: Split
    train: np.ndarray  # row numbers of each part
    val: np.ndarray
    test: np.ndarray
    train_x: np.ndarray  # training inputs, pooled rows included
    train_raw: np.ndarray
    train_y: np.ndarray
    pooled: int
    skipped: int


def prepare(features: pd.DataFrame, config: HealthTrainConfig) -> Prepared:
    """Targets, inputs and the purged split by date; a small universe's training rows pooled."""
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
    raw = frame_raw(features)
    values = model_inputs(raw, features["date"].to_numpy()).astype(np.float32)

    def rows(days: np.ndarray) -> np.ndarray:
        return np.flatnonzero(known & np.isin(day_index, days))

    train, val, test = rows(split.train), rows(split.val), rows(split.test)
    if len(set(target[train].tolist())) < 2:
        raise TraderMLError("the training rows hold a single outcome: more symbols or a longer window are needed")
    train_x, train_raw, train_y = values[train], raw[train], target[train]
    pooled = 0
    if features["symbol"].nunique() < config.pool_below_symbols:
        pool, pool_target = pooled_rows(unique_days[split.val[0]], config.horizon)
        pooled = len(pool)
        pool_raw = frame_raw(pool)
        train_x = np.concatenate([train_x, model_inputs(pool_raw, pool["date"].to_numpy()).astype(np.float32)])
        train_raw = np.concatenate([train_raw, pool_raw])
        train_y = np.concatenate([train_y, pool_target])
    return Prepared(
        values, raw, target, drawdown, dates, split, train, val, test, train_x, train_raw,
        train_y.astype(np.float32), pooled, skipped,
    )  # fmt: skip


def fit_prior(model: HealthNet, prep: Prepared) -> str:
    """The volatility prior, set before the network trains: a small universe (one that pools)
    reads the blend half-way to the quarter's volatility, any other the wider blend; its weight
    and bias are a logistic fit on the training rows. Returns the blend's name."""
    blend = SMALL_UNIVERSE_BLEND if prep.pooled else WIDE_BLEND
    mix = blend_mix(blend)
    (weight,), intercept = logistic(prior_inputs(torch.as_tensor(prep.train_x), mix).numpy(), prep.train_y)
    model.prior_mix.copy_(mix)
    model.prior.copy_(torch.tensor([float(weight), float(intercept)]))
    return blend


def fit_network(prep: Prepared, config: HealthTrainConfig, progress: bool) -> tuple[HealthNet, FitResult, str]:
    """The network: scaler and volatility prior set from the training rows, then trained."""
    seed_everything(config.fit.seed)
    model = HealthNet(config.model)
    model.inputs.fit(prep.train_x)  # the scaler sees training rows only
    blend = fit_prior(model, prep)
    val = prep.val

    def evaluate(net) -> dict[str, float]:
        probability, _, _ = predict_health(net, prep.values[val])
        return {"val_log_loss": float(log_loss_rows(probability, prep.target[val]).mean())}

    result = fit(
        model,
        lambda net, batch: config.loss(net, *batch),
        (prep.train_x, prep.train_y),
        (prep.values[val], prep.target[val].astype(np.float32)),
        config.fit,
        evaluate=evaluate,
        progress=progress,
        desc=f"health {config.model.model_type}",
    )
    return model.cpu(), result, blend


@dataclass(frozen=True)
class Calibration:
    """The choices made after the fit, on validation days of the user's own universe: how much
    of the learned correction the score keeps, and the Platt scaling that makes it a probability."""

    correction_weight: float
    slope: float
    intercept: float
    val_log_loss: dict[str, float]  # per correction weight tried
    val_correlation: dict[str, float]
    shrink: float = 1.0  # a small universe's pull towards the base rate (health_shrink); 1: none
    worst_year_gain: dict[str, float] = field(default_factory=dict)  # per shrink tried

    def apply(self, model: HealthNet) -> None:
        model.correction_weight.fill_(self.correction_weight)
        model.calibration.copy_(torch.tensor([self.slope, self.intercept]))


def calibrate(model: HealthNet, prep: Prepared) -> Calibration:
    """Each correction weight's validation log loss after its own Platt scaling; a larger weight
    is kept only when it lowers that by ``MIN_GAIN`` and ranks validation days no worse than the
    prior alone (weight 0). So a correction that does not help leaves the calibrated prior."""
    model.eval()
    rows, target = prep.values[prep.val], prep.target[prep.val]
    with torch.no_grad():
        x = torch.as_tensor(rows)
        prior = model.prior_logit(x).numpy().astype(float)
        model.correction_weight.fill_(1.0)
        correction = model.parts(x).health_logit.numpy().astype(float) - prior
    dates = prep.row_date[prep.val]
    losses, correlations, platt = {}, {}, {}
    best = None
    for weight in CORRECTION_WEIGHTS:
        logit = prior + weight * correction
        (slope,), intercept = logistic(logit[:, None], target)
        platt[weight] = (slope, intercept)
        losses[weight] = float(log_loss_rows(1 / (1 + np.exp(-(slope * logit + intercept))), target).mean())
        correlations[weight] = per_date_rank_correlation(dates, logit, prep.drawdown[prep.val])
        no_worse = not correlations[weight] < correlations[0.0]
        if best is None or (losses[weight] < losses[best] - MIN_GAIN and no_worse):
            best = weight
    slope, intercept = float(platt[best][0]), float(platt[best][1])
    shrink, worst = 1.0, {}
    if prep.pooled:  # a small universe: shrink towards the base rate as its worst own year asks
        shrink, worst, (slope, intercept) = small_universe_shrink(model, prep, best, (slope, intercept))
    chosen = Calibration(
        best,
        slope,
        intercept,
        {str(w): round(v, 5) for w, v in losses.items()},
        {str(w): round(float(v), 4) for w, v in correlations.items()},
        shrink,
        worst,
    )
    chosen.apply(model)
    return chosen


def small_universe_shrink(
    model: HealthNet, prep: Prepared, weight: float, platt: tuple[float, float]
) -> tuple[float, dict[str, float], tuple[float, float]]:
    """(shrink, each shrink's worst-year gain, the shrunk Platt pair), judged on the user's own
    training and validation days by calendar year; the base rate is the training rows' rate."""
    own = np.concatenate([prep.train, prep.val])
    model.correction_weight.fill_(weight)
    with torch.no_grad():
        logit = model.parts(torch.as_tensor(prep.values[own])).health_logit.numpy().astype(float)
    rate = float(np.mean(prep.train_y))
    gains = year_gains(logit, prep.target[own], prep.row_date[own], platt, rate)
    shrink = worst_year_shrink(gains)
    worst = {str(s): round(min(g.values()), 5) for s, g in gains.items()}
    return shrink, worst, shrunk_platt(platt, shrink, rate)


def evaluate_health(model: HealthNet, prep: Prepared, truth: np.ndarray | None, references: dict) -> dict:
    """Model, heuristic, one-feature scores and the calibrated references on the test rows."""
    test = prep.test
    test_dates = prep.row_date[test]
    target, drawdown = prep.target[test], prep.drawdown[test]
    truth_test = None if truth is None else np.asarray(truth, dtype=float)[test]
    probability, _, error = predict_health(model, prep.values[test])
    raw = prep.raw[test]

    def judge(score: np.ndarray, is_probability: bool) -> dict:
        return health_metrics(test_dates, score, target, drawdown, is_probability, truth_test)

    column = {name: raw[:, RAW_COLUMNS.index(name)] for name in ("vol_63d", "drawdown_63d")}
    return {
        "model": {**judge(probability, True), "test_recon_mse": float(error.mean())},
        "baseline": judge(baseline_health(raw[:, : len(ASSET_FEATURES)]), True),
        "-vol_63d": judge(-column["vol_63d"], False),
        "drawdown_63d": judge(column["drawdown_63d"], False),
        **{name: judge(ref.probability(raw), True) for name, ref in references.items()},
    }


def training_facts(model: HealthNet, prep: Prepared, blend: str, calibration: Calibration, references: dict) -> dict:
    """What a metrics file records of the run besides the scores: the test window, the split,
    which rows trained it, the prior and correction chosen, the references' calibrations."""
    test_dates = prep.row_date[prep.test]
    return {
        "test_window": {
            "first_date": str(test_dates.min().date()),
            "last_date": str(test_dates.max().date()),
            "days": int(len(prep.split.test)),
            "rows": int(len(prep.test)),
            "event_rate": float(1.0 - prep.target[prep.test].mean()),
        },
        "split": {f"{k}_days": int(len(getattr(prep.split, k))) for k in ("train", "val", "test")},
        "skipped_rows": prep.skipped,
        "training_rows": {
            "own": int(len(prep.train)),
            "pooled": prep.pooled,
            "pooled_from": POOLED_SOURCE if prep.pooled else None,
        },
        "prior": {
            "blend": blend,
            "vols": PRIOR_BLENDS[blend],
            "weights": [round(float(w), 4) for w in model.prior.tolist()],
            "correction_weight": calibration.correction_weight,
            "val_log_loss_by_correction_weight": calibration.val_log_loss,
            "val_correlation_by_correction_weight": calibration.val_correlation,
            "calibration_shrink": calibration.shrink,
            "worst_year_gain_by_shrink": calibration.worst_year_gain,
        },
        "references": {name: [ref.slope, ref.intercept] for name, ref in references.items()},
    }


def train_health(
    features: pd.DataFrame,
    config: HealthTrainConfig | None = None,
    truth: np.ndarray | None = None,
    progress: bool = True,
) -> HealthTrainResult:
    """Train on a validated features frame; ``truth`` (hidden state per row, higher healthier)
    adds the rank correlation with the simulator's truth."""
    config = config or HealthTrainConfig()
    prep = prepare(features, config)
    model, result, blend = fit_network(prep, config, progress)
    calibration = calibrate(model, prep)
    references = fit_references(prep.train_raw, prep.train_y)
    metrics = evaluate_health(model, prep, truth, references) | training_facts(
        model, prep, blend, calibration, references
    )
    metrics["warnings"] = health_warnings(metrics, calibration.slope)
    vol_21d = prep.raw[prep.train, RAW_COLUMNS.index("vol_21d")]
    dates = prep.row_date
    return HealthTrainResult(
        model=model,
        config=config,
        fit=result,
        split=prep.split,
        vol_boundaries=tuple(float(b) for b in np.quantile(vol_21d, [1 / 3, 2 / 3])),  # type: ignore[arg-type]
        metrics=metrics,
        data_window={
            "first_date": str(dates.min().date()),
            "last_date": str(dates.max().date()),
            "rows": len(features),
            "symbols": int(features["symbol"].nunique()),
        },
        test_rows=prep.raw[prep.test],
        test_inputs=prep.values[prep.test],
        test_index=prep.test,
        skipped_rows=prep.skipped,
        references=references,
    )


def health_warnings(metrics: dict, calibration_slope: float) -> list[str]:
    """What a user must hear before serving this model: on its own test window it claims more
    than it knows (a log loss above the base rate's or a calibrated reference's), it ranks
    worse than -vol_63d, or it is wrong-way round (a negative calibration slope)."""
    out = []
    model = metrics["model"]
    for name in REFERENCES:
        if model["log_loss"] > metrics[name]["log_loss"]:
            out.append(
                f"the health model's log loss is above the {name}'s on its own test window "
                f"({model['log_loss']:.4f} vs {metrics[name]['log_loss']:.4f})"
            )
    rank, reference = model["test_health_correlation"], metrics["-vol_63d"]["test_health_correlation"]
    if rank < reference - RANK_MARGIN:
        out.append(
            f"the health model ranks worse than -vol_63d on its own test window "
            f"(correlation with the forward drawdown {rank:.3f} vs {reference:.3f})"
        )
    if calibration_slope < 0:
        out.append(f"the health model is wrong-way round: its calibration slope is {calibration_slope:.3f}")
    return out


def health_summary(metrics: dict) -> dict:
    """The training guide's latest.json fields, plus the baseline's on the same window."""
    model, baseline = metrics["model"], metrics["baseline"]
    out = {
        "test_recon_mse": model["test_recon_mse"],
        "test_health_correlation": model["test_health_correlation"],
        "test_auc": model["auc"],
        "test_log_loss": model["log_loss"],
        "test_brier": model["brier"],
        "baseline_test_health_correlation": baseline["test_health_correlation"],
        "baseline_test_auc": baseline["auc"],
        "baseline_test_brier": baseline["brier"],
        "base_rate_test_log_loss": metrics[BASE_RATE]["log_loss"],
        "vol_63d_test_health_correlation": metrics["-vol_63d"]["test_health_correlation"],
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
        "model_inputs": list(MODEL_INPUTS),
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
        "prior": {
            "blend": result.metrics["prior"]["blend"],
            "vols": PRIOR_BLENDS[result.metrics["prior"]["blend"]],
            "weights": model.prior.tolist(),
        },
        "correction_weight": float(model.correction_weight),
        "references": result.metrics["references"],
        "data_window": result.data_window,
        "training_rows": result.metrics["training_rows"],
        "test_window": result.metrics["test_window"],
        "metrics": health_summary(result.metrics),
    }
    data, gap = to_onnx(
        model,
        result.test_inputs[:2],
        metadata["input_name"],
        metadata["output_names"],
        metadata,
        parity_batches(result.test_inputs),
    )
    return data, {**metadata, "parity_max_abs_diff": gap}
