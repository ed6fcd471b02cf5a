"""One monitoring record: the live record of the served answers and the drift of recent inputs,
as a JSON-ready dict (``trader-ml monitor --json``), its text, and its place in the store."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from trader_ml import registry, safejson
from trader_ml.data.partitions import read_table, stored_days
from trader_ml.errors import NotFoundError, TraderMLError
from trader_ml.monitor import drift
from trader_ml.monitor.answers import read_answers
from trader_ml.monitor.live import (
    answer_counts,
    expectations,
    health_record,
    regime_record,
    stale,
)
from trader_ml.monitor.portfolio_live import portfolio_record
from trader_ml.schema import ASSET_FEATURES, CONTEXT_FEATURES
from trader_ml.store import Store
from trader_ml.suspect_marks import marks

RECORD_KEY = "monitoring/latest.json"  # the newest record: what models list shows as "live"
DRIFT_WINDOW_DAYS = 63  # the recent days judged for drift: a quarter of trading


def served_versions(answers, pointer: dict | None) -> dict[str, str | None]:
    """The trained version that gave most of each model's answers, else the current one."""
    out = {}
    for kind, frame in (("regime", answers.regime), ("health", answers.health)):
        trained = frame[frame["source"] == "trained"]
        if len(trained):
            out[kind] = str(trained.groupby("version")["date"].nunique().idxmax())
        else:
            out[kind] = registry.model_version(pointer, kind) if pointer else None
    return out


def drift_record(
    store: Store, pointer: dict | None, context: pd.DataFrame, today: dt.date, window: int = DRIFT_WINDOW_DAYS
) -> dict:
    """The last ``window`` stored days against the current models' training profile."""
    days = stored_days(store, "context")
    out: dict = {"stale": stale(days[-1] if days else None, today)}
    recent_days = days[-window:]
    if not recent_days:
        return out
    recent = {
        "regime": context[pd.DatetimeIndex(context["date"]) >= pd.Timestamp(recent_days[0])],
        "health": read_table(store, "features", start=dt.date.fromisoformat(recent_days[0])),
    }
    read: dict[str, tuple] = {}  # version -> its input_profile field, read once for both models
    for kind in registry.KINDS:
        version = registry.model_version(pointer, kind) if pointer else None
        if version is None:
            out[kind] = {
                "version": None,
                "note": f"no trained {kind} model serves in this store, so nothing to check drift against: the rule "
                f"baseline answers (train one: trader-ml train --store {store.url})",
            }
            continue
        if version not in read:
            read[version] = registry.manifest_field(store, version, "input_profile")
        profiles, damage = read[version]
        profile = (profiles or {}).get(kind)
        if damage or not isinstance(profile, dict):
            note = damage or (
                f"version {version} recorded no input profile (trained before profiles were, or added by "
                "trader-ml models add without --data)"
            )
            out[kind] = {"version": version, "note": f"drift cannot be checked: {note}"}
            continue
        out[kind] = {
            "version": version,
            **drift.compare(profile, recent[kind]),
            "outlier_days": drift.outlier_days(profile, recent[kind]),
        }
    return out


def suspect_days(store: Store, first: str | None, last: str) -> list[dict]:
    """The suspect days (data/suspect/) from ``first`` (the live period's or the drift window's
    start, whichever is earlier) through ``last``, accepted or not."""
    return [
        {"date": m.day, "accepted": m.accepted, "reasons": [r.text for r in m.reasons]}
        for m in marks(store, first, last)
    ]


def live_record(
    store: Store, since: dt.date | None = None, today: dt.date | None = None, drift_days: int = DRIFT_WINDOW_DAYS
) -> dict:
    today = today or dt.date.today()
    context = read_table(store, "context", today=today)
    if context.empty:
        raise TraderMLError(f"{store.describe('data/context/')} holds no days: ingest some first")
    answers = read_answers(store, since, str(context["date"].iloc[0].date()), today)
    pointer, _ = registry.read_latest(store)
    first = answers.regime["date"].min() if len(answers.regime) else None
    features = read_table(store, "features", start=first.date() if first is not None else None, today=today)
    versions = served_versions(answers, pointer)
    expected = expectations(store, versions, context, str(first.date()) if first is not None else None)
    days = [str(d.date()) for d in pd.DatetimeIndex(context["date"])]
    window_start = days[-drift_days:][0]
    live_start = str(first.date()) if first is not None else window_start
    return {
        "store": store.url,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "since": since.isoformat() if since else None,
        "through": days[-1],
        "answers": answer_counts(answers, days),
        "health": health_record(answers.health, features, expected["health"]),
        "regime": regime_record(answers.regime, context, expected["regime"]),
        "portfolio": portfolio_record(answers.portfolio, context, features),
        "drift": drift_record(store, pointer, context, today, drift_days),
        "suspect_days": suspect_days(store, min(window_start, live_start), days[-1]),
    }


def write_record(store: Store, record: dict) -> str:
    store.write(RECORD_KEY, json.dumps(record, indent=2, default=float).encode())
    return RECORD_KEY


def read_record(store: Store) -> dict | None:
    try:
        return safejson.loads_object(store.read(RECORD_KEY), store.describe(RECORD_KEY))
    except (NotFoundError, safejson.DamagedJSON):
        return None


def _fmt(value) -> str:
    if isinstance(value, list) and len(value) == 2:
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    return "-" if value is None else f"{value:+.3f}" if isinstance(value, float) else str(value)


def drift_lines(record: dict) -> list[str]:
    """The drift of each model's inputs, its outlier days and the suspect days, a line each."""
    d, lines = record["drift"], []
    for kind in registry.KINDS:
        part = d.get(kind, {})
        if "flags" in part:
            outliers = len(part.get("outlier_days", []))
            flags = ", ".join(part["flags"]) or ("no column-level shift" if outliers else "none")
            lines.append(
                f"drift ({kind} inputs, last {part['days']} days): {flags}"
                + (f"; {outliers} outlier day(s)" if outliers else "")
                + (f"; went missing: {', '.join(part['went_missing'])}" if part["went_missing"] else "")
                + (f"; appeared: {', '.join(part['appeared'])}" if part["appeared"] else "")
            )
        elif "note" in part:
            lines.append(f"drift ({kind} inputs): {part['note']}")
        farthest = sorted(part.get("outlier_days", []), key=lambda day: -day.get("widths", 0))
        for day in sorted(farthest[:5], key=lambda day: day["date"]):
            lines.append(f"  outlier day {day['date']} ({kind} inputs): {_values_text(day)}")
        if len(part.get("outlier_days", [])) > 5:
            lines.append(f"  ... and {len(part['outlier_days']) - 5} nearer outlier days (--json lists them all)")
    for mark in record.get("suspect_days", []):
        status = f"accepted {mark['accepted']}" if mark["accepted"] else "not accepted: re-ingest it or accept it"
        lines.append(f"suspect day {mark['date']} ({status}): {'; '.join(mark['reasons'])}")
    return lines


def summary_lines(record: dict) -> list[str]:
    """The record as the lines ``trader-ml monitor`` prints."""
    a, h, r, d = record["answers"], record["health"], record["regime"], record["drift"]
    lines = [
        f"answers {a['first']} .. {a['last']}: {a['days']} days; served by the baseline: regime {a['baseline_days']['regime']} "
        f"days, health {a['baseline_days']['health']} days; {len(a['gaps'])} stored days without an answer; "
        f"{len(a['version_changes'])} version changes; {len(a['damaged'])} unreadable answer files"
        if a["days"]
        else "no stored answers yet: the schedule writes them to predictions/ (the Lambda, or trader-ml predict --write)"
    ]
    damaged = list(a["damaged"].items())
    lines += [f"unreadable answer file {name}: {why}" for name, why in damaged[:5]]
    if len(damaged) > 5:
        lines.append(
            f"... and {len(damaged) - 5} more unreadable answer files (trader-ml monitor --json lists them all)"
        )
    if "model" in h:
        exp = h["expected"].get("rank_correlation")
        lines.append(
            f"health: {h['days_scored']} days scored ({h['pending']} answers still waiting for their 21 days): rank "
            f"correlation {_fmt(h['model']['rank_correlation'])} (90% {_fmt(h['model']['rank_correlation_interval'])}), "
            f"baseline {_fmt(h['baseline']['rank_correlation'])}, expected {_fmt(exp)}; log loss "
            f"{h['model']['log_loss']:.3f} vs {h['baseline']['log_loss']:.3f}, Brier {h['model']['brier']:.3f} vs "
            f"{h['baseline']['brier']:.3f}"
        )
    lines.append(f"health verdict: {h['verdict']}")
    if "model" in r and "sharpe" in r["model"]:
        labels = r.get("labels", {})
        lines.append(
            f"regime: {r['days_scored']} days scored: Sharpe {_fmt(r['model']['sharpe'])} "
            f"(90% {_fmt(r['model'].get('sharpe_interval'))}), buy-and-hold {_fmt(r['buy_and_hold'].get('sharpe'))}, "
            f"rules {_fmt(r['rules'].get('sharpe'))}, expected {_fmt(r['expected'].get('sharpe'))}; agreement with the "
            f"labels over {labels.get('days', 0)} days: macro-F1 {_fmt(labels.get('f1_macro'))} "
            f"(test window {_fmt(r['expected'].get('f1_macro'))})"
        )
    lines.append(f"regime verdict: {r['verdict']}")
    p = record.get("portfolio") or {}
    if "sharpe" in (p.get("models") or {}):
        lines.append(
            f"portfolio: {p['days']} days held: Sharpe {_fmt(p['models']['sharpe'])}, max DD "
            f"{_fmt(p['models']['max_drawdown'])}; equal weight {_fmt(p['equal_weight'].get('sharpe'))}, inverse "
            f"volatility x variance targeting {_fmt(p['inverse_vol_x_vt'].get('sharpe'))}"
        )
    if p:
        lines.append(f"portfolio verdict: {p['verdict']}")
    lines += drift_lines(record)
    s = d["stale"]
    lines.append(
        f"data: last ingested day {s['last_ingested_day']}, {s['business_days_behind']} business days behind"
        + (" (stale)" if s["flag"] else "")
    )
    return lines


def _values_text(day: dict) -> str:
    shown = [
        f"{v.get('symbol', '') + ' ' if v.get('symbol') else ''}{v['column']} {v['value']:.4g} "
        f"(trained on {v['range'][0]:.3g} .. {v['range'][1]:.3g})"
        for v in day["values"]
    ]
    more = day["count"] - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def input_profiles(context: pd.DataFrame, features: pd.DataFrame, regime_first: str, health_first: str) -> dict:
    """Each model's input profile on its training window (the days before its test window)."""
    return {
        "regime": drift.input_profile(
            context[pd.DatetimeIndex(context["date"]) < pd.Timestamp(regime_first)], CONTEXT_FEATURES
        ),
        "health": drift.input_profile(
            features[pd.DatetimeIndex(features["date"]) < pd.Timestamp(health_first)], ASSET_FEATURES
        ),
    }
