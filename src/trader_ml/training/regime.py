"""Fit and judge the regime model: windows, labels, a purged chronological split, the baseline.

Every number it reports is measured on the test window only, which no scaler, label or early
stopping decision has seen, next to the rule baseline on the very same days.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from trader_ml.baselines import DEFAULT_RULES, baseline_regimes
from trader_ml.errors import InsufficientHistory
from trader_ml.exposure import exposure_prior
from trader_ml.models.regime import RegimeExport, RegimeModelConfig, build_regime_model
from trader_ml.schema import CONTEXT_FEATURES, REGIMES
from trader_ml.training.export import artifact_header, parity_batches, to_onnx
from trader_ml.training.gate import served_comparisons
from trader_ml.training.labeller import DEFAULT_LABELLER, LabellerConfig, hindsight_labels
from trader_ml.training.labels import DEFAULT_LABEL_HORIZON, regime_labels
from trader_ml.training.loop import FitConfig, FitResult, fit, seed_everything
from trader_ml.training.metrics import regime_metrics
from trader_ml.training.options import TrainOptions
from trader_ml.training.split import Split, chronological_split, class_weights

MIN_SAMPLES = 100  # labelled windows needed to train, validate and test at all
TREND_SCALER_WINDOWS = 2000  # evenly spaced training windows fit the trend inputs' scaler


@dataclass(frozen=True)
class RegimeTrainConfig:
    model: RegimeModelConfig = field(default_factory=RegimeModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    label_horizon: int = DEFAULT_LABEL_HORIZON
    labeller: LabellerConfig = DEFAULT_LABELLER
    val_fraction: float = 0.15
    test_fraction: float = 0.15


def regime_train_config(
    model_type: str = TrainOptions.regime_type,
    epochs: int = TrainOptions.epochs,
    batch_size: int = TrainOptions.regime_batch_size,
    seed: int = TrainOptions.seed,
    device: str = TrainOptions.device,
    layers: int | None = None,
    label_horizon: int = DEFAULT_LABEL_HORIZON,
) -> RegimeTrainConfig:
    """The configuration every entry point trains with (train, train-regime, backtest): the
    same defaults everywhere, so a backtest refit is what ``trader-ml train`` would have done."""
    return RegimeTrainConfig(
        model=RegimeModelConfig(model_type=model_type, num_layers=layers),
        fit=FitConfig(epochs=epochs, batch_size=batch_size, seed=seed, device=device),
        label_horizon=label_horizon,
    )


def min_training_days(config: RegimeTrainConfig) -> int:
    """Context rows a training window needs at least (labelled windows plus the purge gaps)."""
    return MIN_SAMPLES + config.model.lookback + 3 * config.label_horizon + 40


@dataclass
class RegimeTrainResult:
    model: torch.nn.Module
    config: RegimeTrainConfig
    fit: FitResult
    split: Split
    metrics: dict  # model / baseline (and *_vs_truth) on the test window, test window facts
    labels: np.ndarray  # the hindsight label of every context row (-1 where unknown)
    data_window: dict
    test_inputs: np.ndarray  # (days, lookback, features) raw test windows, for export checks
    exposure_prior: dict = field(default_factory=dict)  # the risk budget's fit on the training days (exposure.py)


def windows(values: np.ndarray, ends: np.ndarray, lookback: int) -> np.ndarray:
    """Rows ``end - lookback + 1 .. end`` for each end: (len(ends), lookback, features)."""
    index = ends[:, None] - lookback + 1 + np.arange(lookback)[None, :]
    return values[index]


def predict_regimes(model: torch.nn.Module, x: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, K), embeddings (N, E)) of raw windows, on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    probs, embeddings = [], []
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            log_probs, embedding = model(torch.as_tensor(x[lo : lo + batch]).to(device))
            probs.append(log_probs.exp().cpu().numpy())
            embeddings.append(embedding.cpu().numpy())
    return np.concatenate(probs), np.concatenate(embeddings)


def label_persistence(train_labels: np.ndarray) -> float:
    """How often a training label equals the day before's: the regime filter's stay probability."""
    same = float(np.mean(train_labels[1:] == train_labels[:-1])) if len(train_labels) > 1 else 0.9
    return min(max(same, 0.5), 0.99)


EVIDENCE_WEIGHTS = (1.0, 0.7, 0.5, 0.35, 0.25)
EVIDENCE_F1_SLACK = 0.02


def choose_evidence_weight(model: torch.nn.Module, x_val: np.ndarray, y_val: np.ndarray) -> float:
    """The smallest evidence weight (the steadiest filter) whose validation macro-F1 is within
    0.02 of the best weight's: fewer false switches at almost no cost, judged on validation."""
    scores = {}
    for weight in EVIDENCE_WEIGHTS:
        model.head.evidence_weight.fill_(weight)
        scores[weight] = regime_metrics(y_val, predict_regimes(model, x_val)[0])["f1_macro"]
    best = max(scores.values())
    return min(w for w, f1 in scores.items() if f1 >= best - EVIDENCE_F1_SLACK)


TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))


def choose_temperature(model: torch.nn.Module, x_val: np.ndarray, y_val: np.ndarray) -> float:
    """The temperature of the final probabilities with the lowest log loss on validation days
    (temperature scaling: the regime each day gets is unchanged, only how sure it is)."""
    model.head.temperature.fill_(1.0)
    log_probs = np.log(np.clip(predict_regimes(model, x_val)[0], 1e-12, None))
    known = y_val >= 0
    log_probs, y = log_probs[known], y_val[known]

    def log_loss(t: float) -> float:
        scaled = log_probs / t
        scaled = scaled - np.logaddexp.reduce(scaled, axis=1, keepdims=True)
        return float(-scaled[np.arange(len(y)), y].mean())

    return float(min(TEMPERATURES, key=log_loss))


def _check_history(context: pd.DataFrame, usable: int, config: RegimeTrainConfig) -> None:
    if usable < MIN_SAMPLES:
        raise InsufficientHistory(
            f"too short a history: {len(context)} trading days of context give {usable} labelled "
            f"{config.model.lookback}-day windows; the regime model needs at least {MIN_SAMPLES} "
            f"(about {min_training_days(config)} trading days)"
        )


@dataclass
class RegimePrepared:
    """A context frame as the regime model reads it: labels, a purged split, validation windows."""

    config: RegimeTrainConfig  # the chosen labeller, the filter's stay probability from the training labels
    values: np.ndarray  # (days, CONTEXT_FEATURES) float32
    labels: np.ndarray  # hindsight label of every day, -1 where unknown
    split: Split
    x_val: np.ndarray  # validation windows and each one's daily labels
    y_val: np.ndarray


def prepare_regime(context: pd.DataFrame, config: RegimeTrainConfig) -> RegimePrepared:
    """Labels (the labeller chosen and fit on training days only) and the purged chronological split."""
    lookback, horizon = config.model.lookback, config.label_horizon
    values = context[list(CONTEXT_FEATURES)].to_numpy(dtype=np.float32)
    rules = regime_labels(context, horizon)
    ends = np.arange(lookback - 1, len(context))
    ends = ends[rules[ends] >= 0]
    _check_history(context, len(ends), config)
    split = chronological_split(ends, horizon, config.val_fraction, config.test_fraction)
    # The labeller is chosen and fit on training days only; it labels the later days from what it learned.
    train_days = split.train[-1] + 1
    labels = hindsight_labels(context, train_days, config.labeller, horizon, rules)
    split = Split(*(rows[labels[rows] >= 0] for rows in (split.train, split.val, split.test)))
    present = sorted(set(labels[split.train].tolist()))
    if len(present) < 2:
        raise InsufficientHistory(
            f"the training labels hold a single regime ({REGIMES[present[0]]}) from "
            f"{context['date'].iloc[split.train[0]].date()} to {context['date'].iloc[split.train[-1]].date()}: "
            "train on a longer window (--max-days) so that the market changes at least once"
        )
    # The filter's stay probability is the training labels' own persistence: set in the config
    # the model is built from, so the saved config is the model's.
    config = replace(config, model=replace(config.model, stay_probability=label_persistence(labels[split.train])))
    x_val, y_val = _windows_and_labels(values, labels, split.val, config.model)
    return RegimePrepared(config, values, labels, split, x_val, y_val)


def _windows_and_labels(values, labels, rows, model: RegimeModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each row's input window and the labels of its last ``filter_days`` days (every filtered
    day is fitted to its own label)."""
    daily_labels = labels.astype(np.int64)[:, None]
    return windows(values, rows, model.lookback), windows(daily_labels, rows, model.filter_days)[:, :, 0]


def fit_regime_network(prep: RegimePrepared, progress: bool) -> tuple[torch.nn.Module, FitResult]:
    """The network: input scalers from the training days, then trained on class-weighted labels."""
    config, split = prep.config, prep.split
    seed_everything(config.fit.seed)
    model = build_regime_model(config.model)
    every = max(1, len(split.train) // TREND_SCALER_WINDOWS)
    model.fit_inputs(
        prep.values[: split.train[-1] + 1], windows(prep.values, split.train[::every], config.model.lookback)
    )
    weights = torch.as_tensor(class_weights(prep.labels[split.train], len(REGIMES)), dtype=torch.float32)

    def loss_fn(net, batch):
        x, y = batch  # y: (B, D) labels of the window's last D days, -1 where unknown
        logits = net.daily_logits(x)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1), weight=weights.to(x.device), ignore_index=-1
        )

    y_val_today = prep.labels[split.val]

    def evaluate(net) -> dict[str, float]:
        probs, _ = predict_regimes(net, prep.x_val)
        return {"val_f1_macro": regime_metrics(y_val_today, probs)["f1_macro"]}

    result = fit(
        model,
        loss_fn,
        _windows_and_labels(prep.values, prep.labels, split.train, config.model),
        (prep.x_val, prep.y_val),
        config.fit,
        evaluate=evaluate,
        progress=progress,
        desc=f"regime {config.model.model_type}",
    )
    return model.cpu(), result


@dataclass(frozen=True)
class RegimeCalibration:
    """The choices made after the fit, on validation days: how steady the regime filter is
    (its evidence weight) and how sure its probabilities are (a temperature)."""

    evidence_weight: float
    temperature: float

    def apply(self, model: torch.nn.Module) -> None:
        model.head.evidence_weight.fill_(self.evidence_weight)
        model.head.temperature.fill_(self.temperature)


def calibrate_regime(model: torch.nn.Module, prep: RegimePrepared) -> RegimeCalibration:
    """The evidence weight first (the temperature is chosen on the filter it will scale)."""
    y_val_today = prep.labels[prep.split.val]
    weight = choose_evidence_weight(model, prep.x_val, y_val_today)
    model.head.evidence_weight.fill_(weight)
    chosen = RegimeCalibration(weight, choose_temperature(model, prep.x_val, y_val_today))
    chosen.apply(model)
    return chosen


def evaluate_regime(
    model: torch.nn.Module, prep: RegimePrepared, context: pd.DataFrame, truth, prior: dict
) -> tuple[dict, np.ndarray]:
    """(metrics, test windows): the model and the rule baseline on the test days, what the served
    exposure earned there against variance targeting alone, and the truth where the simulator
    knows it."""
    split = prep.split
    x_test, y_test = windows(prep.values, split.test, prep.config.model.lookback), prep.labels[split.test]
    probs, _ = predict_regimes(model, x_test)
    _, baseline_probs = baseline_regimes(prep.values.astype(np.float64))
    metrics = {
        "model": regime_metrics(y_test, probs),
        "baseline": regime_metrics(y_test, baseline_probs[split.test]),
        "test_window": _window_facts(context, split.test, y_test),
        "split": {k: int(len(v)) for k, v in asdict(split).items()},
        "served_exposure": served_exposure(prep, probs, prior),
    }
    model_f1, baseline_f1 = metrics["model"]["f1_macro"], metrics["baseline"]["f1_macro"]
    metrics["warnings"] = (
        [
            f"the regime model scores below its rule baseline on its own test window (macro-F1 {model_f1:.3f} vs {baseline_f1:.3f})"
        ]
        if model_f1 < baseline_f1
        else []
    )
    if truth is not None:
        true_test = np.asarray(truth)[split.test]
        metrics["model_vs_truth"] = regime_metrics(true_test, probs)
        metrics["baseline_vs_truth"] = regime_metrics(true_test, baseline_probs[split.test])
    return metrics, x_test


def train_regime(
    context: pd.DataFrame,
    config: RegimeTrainConfig | None = None,
    truth: np.ndarray | None = None,
    progress: bool = True,
) -> RegimeTrainResult:
    """Train on a validated context frame; ``truth`` (regime index per row) adds truth metrics."""
    prep = prepare_regime(context, config or RegimeTrainConfig())
    model, result = fit_regime_network(prep, progress)
    calibrate_regime(model, prep)
    train_end = prep.split.train[-1] + 1
    prior = exposure_prior(
        prep.values[:train_end, CONTEXT_FEATURES.index("spy_return_1d")], prep.labels[prep.split.train]
    )
    metrics, x_test = evaluate_regime(model, prep, context, truth, prior)
    dates = pd.DatetimeIndex(context["date"])
    return RegimeTrainResult(
        model=model,
        config=prep.config,
        fit=result,
        split=prep.split,
        metrics=metrics,
        labels=prep.labels,
        data_window={"first_date": str(dates[0].date()), "last_date": str(dates[-1].date()), "rows": len(context)},
        test_inputs=x_test,
        exposure_prior=prior,
    )


def served_exposure(prep: RegimePrepared, probs: np.ndarray, prior: dict) -> dict:
    """The test days as served: the risk budget against variance targeting alone (what serves
    when the model does not), Sharpe and max drawdown with the paired interval of the difference."""
    spy = prep.values[:, CONTEXT_FEATURES.index("spy_return_1d")]
    sharpes, drawdowns = served_comparisons(spy, probs, prep.split.test, prior)
    return {
        "risk_budget": {"sharpe": sharpes.candidate, "max_drawdown": drawdowns.candidate},
        "variance_target": {"sharpe": sharpes.other, "max_drawdown": drawdowns.other},
        "vs_variance_target": {
            "sharpe_difference": sharpes.difference,
            "sharpe_interval": [sharpes.low, sharpes.high],
            "max_drawdown_difference": drawdowns.difference,
            "max_drawdown_interval": [drawdowns.low, drawdowns.high],
        },
    }


def _window_facts(context: pd.DataFrame, rows: np.ndarray, y: np.ndarray) -> dict:
    dates = pd.DatetimeIndex(context["date"].iloc[rows])
    return {
        "first_date": str(dates[0].date()),
        "last_date": str(dates[-1].date()),
        "days": int(len(rows)),
        "days_per_regime": {name: int((y == i).sum()) for i, name in enumerate(REGIMES)},
    }


def regime_artifact(result: RegimeTrainResult) -> tuple[bytes, dict]:
    """(ONNX bytes, metadata) of a trained regime model, parity-checked on real test windows."""
    model = result.model
    metadata = {
        **artifact_header("regime"),
        "input_name": "context_window",
        "output_names": ["regime_probs", "regime_embedding"],
        "feature_order": list(CONTEXT_FEATURES),
        "lookback": result.config.model.lookback,
        "regimes": list(REGIMES),
        "label_horizon": result.config.label_horizon,
        "labeller": asdict(result.config.labeller),
        "rules": asdict(DEFAULT_RULES),
        "model_config": asdict(result.config.model),
        "stay_probability": float(model.head.log_transition.diagonal()[0].exp()),
        "evidence_weight": float(model.head.evidence_weight),
        "temperature": float(model.head.temperature),
        "fit_config": asdict(result.config.fit),
        "scaler": {"mean": model.inputs.mean.tolist(), "scale": model.inputs.scale.tolist()},
        # Columns missing throughout training: the model reads them as missing whatever comes later.
        "unseen_columns": [c for c, seen in zip(CONTEXT_FEATURES, model.inputs.seen.tolist(), strict=True) if not seen],
        "data_window": result.data_window,
        "test_window": result.metrics["test_window"],
        "metrics": regime_summary(result.metrics),
        "exposure_prior": result.exposure_prior,
    }
    data, gap = to_onnx(
        RegimeExport(model),
        result.test_inputs[:2],
        metadata["input_name"],
        metadata["output_names"],
        metadata,
        parity_batches(result.test_inputs),
    )
    return data, {**metadata, "parity_max_abs_diff": gap}


def regime_summary(metrics: dict) -> dict:
    """The training guide's latest.json fields, plus the baseline's on the same window."""
    out = {
        "test_accuracy": metrics["model"]["accuracy"],
        "test_f1_macro": metrics["model"]["f1_macro"],
        "baseline_test_accuracy": metrics["baseline"]["accuracy"],
        "baseline_test_f1_macro": metrics["baseline"]["f1_macro"],
        "test_ece": metrics["model"]["ece"],
        "baseline_test_ece": metrics["baseline"]["ece"],
    }
    served = metrics["served_exposure"]["vs_variance_target"]
    out["served_sharpe_vs_variance_target"] = [served["sharpe_difference"], *served["sharpe_interval"]]
    out["served_drawdown_vs_variance_target"] = [served["max_drawdown_difference"], *served["max_drawdown_interval"]]
    if "model_vs_truth" in metrics:
        out["truth_f1_macro"] = metrics["model_vs_truth"]["f1_macro"]
        out["baseline_truth_f1_macro"] = metrics["baseline_vs_truth"]["f1_macro"]
    return out
