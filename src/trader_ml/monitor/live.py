"""The live record: stored answers scored once their outcomes are known, each next to what the
rule baseline would have said on the same days and to what the served version's test window
(or its backtest) promised, with a plain verdict.

Health: the daily rank correlation of ``health_score`` with the forward 21-day drawdown, and the
log loss and Brier score of the event "not in the worst fifth". Regime: the backtest's exposure
rule over the live days (exposure set at each answered close, held through the next day) against
buy-and-hold and the rules, and agreement with the hindsight labels once they can be computed.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from trader_ml import registry
from trader_ml.backtest.allocation import performance
from trader_ml.baselines import baseline_health, baseline_regimes
from trader_ml.errors import TraderMLError
from trader_ml.exposure import COST_BP, exposure, strategy_returns
from trader_ml.monitor.answers import StoredAnswers, regime_probs
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES, is_day
from trader_ml.stats import against_model, brier_rows, interval, log_loss_rows, over_resamples, resamples, sharpe
from trader_ml.trading_days import sessions_between
from trader_ml.training.gate import MIN_TEST_DAYS
from trader_ml.training.labeller import hindsight_labels
from trader_ml.training.labels import DEFAULT_LABEL_HORIZON, health_targets
from trader_ml.training.metrics import daily_rank_correlations

MIN_REGIME_DAYS = 63  # a Sharpe ratio over fewer days says nothing


def live_interval(daily: np.ndarray, statistic=lambda days: np.mean(days, axis=-1)) -> list[float]:
    """The 90% stationary-bootstrap interval of ``statistic`` (over the last axis) over the days of ``daily``."""
    return interval(over_resamples(statistic, resamples(daily), daily))


def verdict(days: int, needed: int, live: list[float] | None, expected: float | None, worse: list[str] = ()) -> str:
    """ "too few days to say"; "worse than the baseline" (or buy-and-hold) when the interval of
    a difference over the same live days lies wholly on the losing side; "worse than expected"
    when the whole interval lies below what was expected; else "in line"."""
    if days < needed or live is None:
        return f"too few days to say ({days} of the {needed} needed)"
    if worse:
        return "worse than " + " and ".join(worse)
    if expected is None or not np.isfinite(expected):
        return "no expectation recorded to compare with"
    return "worse than expected" if live[1] < expected else "in line"


def _probability_scores(score: np.ndarray, event: np.ndarray) -> dict:
    return {"log_loss": float(np.mean(log_loss_rows(score, event))), "brier": float(np.mean(brier_rows(score, event)))}


def health_record(answers: pd.DataFrame, features: pd.DataFrame, expected: dict) -> dict:
    """The health answers scored where their 21-day outcome is known, with the heuristic's
    scores of the same rows beside them."""
    if answers.empty:
        return {"answers": 0, "verdict": verdict(0, MIN_TEST_DAYS, None, None)}
    target, drawdown = health_targets(features)
    outcomes = features[["date", "symbol"]].assign(
        event=target,
        drawdown=drawdown,
        baseline=baseline_health(features[list(ASSET_FEATURES)].to_numpy(dtype=float)),
    )
    joined = answers.merge(outcomes, on=["date", "symbol"], how="left")
    known = joined[joined["event"].notna()]
    out: dict = {"answers": len(joined), "pending": int(len(joined) - len(known)), "days_scored": 0}
    if known.empty:
        out["verdict"] = verdict(0, MIN_TEST_DAYS, None, None)
        return out
    dates = known["date"].to_numpy()
    model_daily = daily_rank_correlations(dates, known["score"].to_numpy(), known["drawdown"].to_numpy())
    base_daily = daily_rank_correlations(dates, known["baseline"].to_numpy(), known["drawdown"].to_numpy())
    event = known["event"].to_numpy()
    out["days_scored"] = len(model_daily)
    enough = len(model_daily) >= MIN_TEST_DAYS
    live = live_interval(model_daily.to_numpy()) if enough else None
    out["model"] = {
        "rank_correlation": float(model_daily.mean()) if len(model_daily) else None,
        "rank_correlation_interval": live,
        **_probability_scores(known["score"].to_numpy(), event),
    }
    out["baseline"] = {
        "rank_correlation": float(base_daily.mean()) if len(base_daily) else None,
        **_probability_scores(known["baseline"].to_numpy(), event),
    }
    worse = []
    if enough:
        gaps = out["vs_baseline"] = _health_differences(known, model_daily, base_daily)
        loss, rank = gaps["log_loss"], gaps["rank_correlation"]
        if loss["interval"][0] > 0:
            worse.append(f"the baseline on log loss ({loss['difference']:+.3f}, 90% {_pair(loss['interval'], 3)})")
        if rank["interval"][1] < 0:
            worse.append(f"the baseline on rank ({rank['difference']:+.3f}, 90% {_pair(rank['interval'], 3)})")
    out["event_rate"] = float(event.mean())
    out["daily_rank_correlation"] = {str(d.date()): float(v) for d, v in model_daily.items()}
    out["expected"] = expected
    out["verdict"] = verdict(len(model_daily), MIN_TEST_DAYS, live, expected.get("rank_correlation"), worse)
    return out


def _health_differences(known: pd.DataFrame, model_daily: pd.Series, base_daily: pd.Series) -> dict:
    """Model minus heuristic over the same live days: the mean daily log loss (lower is better)
    and the mean daily rank correlation (higher is better), each with its 90% interval."""
    rows = known.assign(
        model=log_loss_rows(known["score"].to_numpy(), known["event"].to_numpy()),
        base=log_loss_rows(known["baseline"].to_numpy(), known["event"].to_numpy()),
    )
    daily = rows.groupby("date")[["model", "base"]].mean()
    loss = (daily["model"] - daily["base"]).to_numpy()
    both = pd.concat([model_daily.rename("m"), base_daily.rename("b")], axis=1).dropna()
    rank = (both["m"] - both["b"]).to_numpy()
    return {
        "log_loss": {"difference": float(loss.mean()), "interval": live_interval(loss), "days": len(loss)},
        "rank_correlation": {"difference": float(rank.mean()), "interval": live_interval(rank), "days": len(rank)},
    }


def regime_record(answers: pd.DataFrame, context: pd.DataFrame, expected: dict) -> dict:
    """The regime answers through the exposure rule, next to buy-and-hold and the rules; and
    against the hindsight labels where those are known."""
    if answers.empty:
        return {"answers": 0, "verdict": verdict(0, MIN_REGIME_DAYS, None, None)}
    dates = pd.DatetimeIndex(context["date"])
    position = pd.Series(np.arange(len(dates)), index=dates)
    at = position.reindex(answers["date"]).to_numpy()
    held = np.isfinite(at) & (at + 1 < len(dates))  # a next trading day whose return is known
    out: dict = {"answers": len(answers), "pending": int((~held).sum())}
    rows = at[held].astype(int)
    rules_probs = baseline_regimes(context[list(CONTEXT_FEATURES)].to_numpy(dtype=float))[1]
    market = context["spy_return_1d"].to_numpy(dtype=float)[rows + 1]
    model_exposure = exposure(regime_probs(answers)[held])
    series = {
        "model": (strategy_returns(model_exposure, market, COST_BP), model_exposure),
        "buy_and_hold": (market, np.ones(len(market))),
        "rules": (strategy_returns(exposure(rules_probs[rows]), market, COST_BP), exposure(rules_probs[rows])),
    }
    out["days_scored"] = int(len(rows))
    for name, (returns, held_exposure) in series.items():
        out[name] = performance(returns, held_exposure) if len(returns) > 1 else {"days": int(len(returns))}
    model_returns = series["model"][0]
    live, worse = None, []
    if len(rows) >= MIN_REGIME_DAYS:
        live = live_interval(model_returns, sharpe)
        out["model"]["sharpe_interval"] = live
        out["vs"] = {}
        for name, said in (("buy_and_hold", "buy-and-hold"), ("rules", "the baseline")):
            vs = against_model(model_returns, series[name][0])  # the backtest's own comparison
            gap = {"sharpe_difference": vs["sharpe_difference"], "interval": vs["sharpe_interval"]}
            out["vs"][name] = gap
            if gap["interval"][1] < 0:
                worse.append(f"{said} (Sharpe {gap['sharpe_difference']:+.2f}, 90% {_pair(gap['interval'])})")
    out["equity"] = {
        "dates": [str(d.date()) for d in dates[rows + 1]],
        **{name: np.cumprod(1 + r).round(6).tolist() for name, (r, _) in series.items()},
    }
    out["labels"] = label_agreement(answers, context, expected.get("fit_days"))
    out["expected"] = expected
    out["verdict"] = verdict(len(rows), MIN_REGIME_DAYS, live, expected.get("sharpe"), worse)
    return out


def _pair(values: list[float], digits: int = 2) -> str:
    return f"[{values[0]:+.{digits}f}, {values[1]:+.{digits}f}]"


def label_agreement(answers: pd.DataFrame, context: pd.DataFrame, fit_days: int | None) -> dict:
    """Accuracy and macro-F1 of the served regime against the hindsight labels (known
    ``DEFAULT_LABEL_HORIZON`` days later), the labeller fit on the days before the live ones."""
    labels = hindsight_labels(context, fit_days)
    position = pd.Series(np.arange(len(context)), index=pd.DatetimeIndex(context["date"]))
    at = position.reindex(answers["date"]).to_numpy()
    known = np.isfinite(at)
    known[known] = labels[at[known].astype(int)] >= 0
    if not known.any():
        return {"days": 0, "horizon": DEFAULT_LABEL_HORIZON}
    truth, probs = labels[at[known].astype(int)], regime_probs(answers)[known]
    called = probs.argmax(axis=1)
    # Over every regime that occurred or was called (scikit-learn's default): a regime called
    # that never happened counts as an F1 of 0, so false panics in a calm month cost.
    seen = sorted(set(truth.tolist()) | set(called.tolist()))
    return {
        "accuracy": float(np.mean(truth == called)),
        "f1_macro": float(f1_score(truth, called, labels=seen, average="macro", zero_division=0)),
        "days": int(len(truth)),
        "horizon": DEFAULT_LABEL_HORIZON,
    }


def expectations(store, versions: dict[str, str | None], context: pd.DataFrame, first_live: str | None) -> dict:
    """What each served version's test window said, and for the regime model the newest regime
    backtest in the store, whose Sharpe the live exposure is held to: only a window or backtest
    that ends before ``first_live`` (the first live day), since one that overlaps the live days
    would judge the live days by themselves."""
    out: dict[str, dict] = {"regime": {}, "health": {}}
    for kind, version in versions.items():
        if version is None:
            continue
        try:
            manifest = registry.read_manifest(store, version)
        except registry.RegistryError as e:
            out[kind] = {"version": version, "damaged": str(e)[:300]}
            continue
        metrics = manifest[f"{kind}_metrics"]  # an object: read_manifest checks
        windows, damage = registry.checked_field(
            manifest, "test_windows", store.describe(registry.manifest_key(version))
        )
        window = (windows or {}).get(kind) or {}
        first = window.get("first_date") if is_day(window.get("first_date")) else None
        last = window.get("last_date") if is_day(window.get("last_date")) else None
        out[kind] = {"version": version, "test_first_date": first, **({"damaged": damage} if damage else {})}
        if first_live is not None and last is not None and last >= first_live:
            out[kind]["not_used"] = f"the test window {first} .. {last} overlaps the live days (from {first_live})"
        elif kind == "health":
            out[kind]["rank_correlation"] = _number(metrics.get("test_health_correlation"))
            out[kind]["brier"] = _number(metrics.get("test_brier"))
        else:
            out[kind]["f1_macro"] = _number(metrics.get("test_f1_macro"))
        if kind == "regime" and first:
            out[kind]["fit_days"] = int((pd.DatetimeIndex(context["date"]) < pd.Timestamp(first)).sum())
    backtests = regime_backtests(store)
    before = [b for b in backtests if first_live is None or b[0] < first_live]
    if before:
        _, sharpe_value, key = max(before)
        out["regime"]["sharpe"] = sharpe_value
        out["regime"]["sharpe_from"] = key
    overlapping = [b for b in backtests if b not in before]
    if overlapping:
        last_day, _, key = max(overlapping)
        out["regime"]["backtest_not_used"] = (
            f"{key} tests through {last_day}, into the live days (from {first_live}): not an expectation"
        )
    return out


def _number(value) -> float | None:
    """A metric read from a manifest: a finite number, else nothing to compare with."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    return float(value) if ok else None


def regime_backtests(store) -> list[tuple[str, float, str]]:
    """(last test day, model Sharpe, key) of every regime backtest summary stored."""
    from trader_ml import safejson

    keys = [k for k in store.list("backtests/") if k.endswith("/summary.json") and not k.startswith("backtests/cache/")]
    dated = []
    for key in keys:
        try:
            summary = safejson.loads_object(store.read(key), store.describe(key))
            if summary.get("kind") != "regime":
                continue
            name = summary["config"].get("model_type") or "gru"
            sharpe_value = summary["rows"][name]["performance"]["sharpe"]
            last = str(summary["data"]["last_date"])[:10]
            if _number(sharpe_value) is not None and is_day(last):
                dated.append((last, float(sharpe_value), key))
        except (TraderMLError, KeyError, TypeError, AttributeError):
            continue
    return dated


def answer_counts(answers: StoredAnswers, stored_days: list[str]) -> dict:
    """What a period holds besides scores: answers by source, fallback reasons, gaps, versions
    and their changes, damaged files: nothing dropped or mixed silently."""
    regime = answers.regime
    answered = [str(d.date()) for d in regime["date"]]
    span = [d for d in stored_days if answered and answered[0] <= d <= answered[-1]]
    versions = {
        kind: frame.groupby("version")["date"].nunique().astype(int).to_dict()
        for kind, frame in (("regime", regime), ("health", answers.health))
    }
    changes = []
    for kind, frame in (("regime", regime), ("health", answers.health)):
        by_day = frame.groupby("date")["version"].first()
        moved = by_day[by_day != by_day.shift()].iloc[1:]
        changes += [{"model": kind, "date": str(d.date()), "version": v} for d, v in moved.items()]
    reasons = pd.concat([regime["reason"], answers.health["reason"]]).dropna()
    return {
        "days": len(answered),
        "first": answered[0] if answered else None,
        "last": answered[-1] if answered else None,
        "baseline_days": {
            "regime": int((regime["source"] == "baseline").sum()),
            "health": int(answers.health.loc[answers.health["source"] == "baseline", "date"].nunique()),
        },
        "fallback_reasons": {str(k)[:160]: int(v) for k, v in reasons.value_counts().head(10).items()},
        "gaps": sorted(set(span) - set(answered)),  # stored trading days no answer was written for
        "not_stored": sorted(set(answered) - set(stored_days)),  # answers for days the store lacks
        "versions": versions,
        "version_changes": sorted(changes, key=lambda c: c["date"]),
        "damaged": answers.damaged,
    }


def stale(last_day: str | None, today: dt.date) -> dict:
    """How many NYSE sessions lie between the last ingested day and today; over 3 is stale."""
    behind = sessions_between(dt.date.fromisoformat(last_day), today) if last_day else None
    return {"last_ingested_day": last_day, "business_days_behind": behind, "flag": behind is None or behind > 3}
