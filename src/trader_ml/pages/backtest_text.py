"""A backtest's summary as the plain-text tables the command prints."""

from __future__ import annotations

from trader_ml.training.metrics import format_table

REGIME_COLUMNS = {
    "annual_return": "annual return",
    "volatility": "volatility",
    "sharpe": "Sharpe",
    "max_drawdown": "max DD",
    "exposure_changes_per_year": "changes/yr",
    "mean_exposure": "exposure",
}


def with_interval(vs: dict | None, metric: str) -> str | None:
    if not vs:
        return None
    low, high = vs[f"{metric}_interval"]
    return f"{vs[f'{metric}_difference']:+.2f} [{low:+.2f},{high:+.2f}]"


def _regime(summary: dict) -> str:
    rows = summary["rows"]
    table = {}
    for name, row in rows.items():
        values = [row["performance"][k] for k in REGIME_COLUMNS]
        values.append(row["vs_labels"]["f1_macro"] if row.get("vs_labels") else None)
        values.append(row["vs_truth"]["f1_macro"] if row.get("vs_truth") else None)
        values += [with_interval(row.get("vs_model"), "sharpe"), with_interval(row.get("vs_model"), "max_drawdown")]
        table[name] = values
    columns = [*REGIME_COLUMNS.values(), "F1 labels", "F1 truth", "model-row Sharpe [90%]", "model-row DD [90%]"]
    text = format_table("", columns, table).lstrip("\n")
    for name, row in rows.items():
        if row.get("vs_variance_target"):
            vs = row["vs_variance_target"]
            text += (
                f"\n{name} - variance_target: Sharpe {with_interval(vs, 'sharpe')}, "
                f"max DD {with_interval(vs, 'max_drawdown')} (90%)"
            )
    return text


def model_gap(row: dict, measure: str) -> str | None:
    """Model minus this row in one measure, with its 90% interval, as printed."""
    gap = (row.get("model_minus") or {}).get(measure)
    if not gap:
        return None
    low, high = gap["interval"]
    return f"{gap['difference']:+.4f} [{low:+.4f},{high:+.4f}]"


def _health(summary: dict) -> str:
    rows = summary["rows"]
    table = {}
    for name, row in rows.items():
        gap = row.get("spearman_minus_-vol_63d")
        table[name] = [
            row["log_loss"]["mean"] if "log_loss" in row else None,
            row["brier"]["mean"] if "brier" in row else None,
            row["spearman"]["mean"],
            gap["mean"] if gap else None,
            row["auc"]["mean"],
            row.get("truth_spearman"),
            model_gap(row, "log_loss"),
            model_gap(row, "brier"),
            model_gap(row, "spearman"),
        ]
    columns = [
        "log loss",
        "Brier",
        "spearman",
        "vs -vol_63d",
        "AUC",
        "truth",
        "model-row log loss [90%]",
        "model-row Brier [90%]",
        "model-row spearman [90%]",
    ]
    return format_table("", columns, table).lstrip("\n")


def summary_text(summary: dict) -> str:
    config = summary["config"]
    head = (
        f"{config['model_type']} {config['model']} model, {len(summary['refits'])} {config['refit']} refits, "
        f"{summary['test_days']} test days; {summary['timing']['refits_fitted']} refits fitted, "
        f"{summary['timing']['refits_cached']} cached, {summary['timing']['seconds']} s"
    )
    return head + "\n" + (_regime(summary) if summary["kind"] == "regime" else _health(summary))


PORTFOLIO_COLUMNS = {
    **{k: v for k, v in REGIME_COLUMNS.items() if k != "exposure_changes_per_year"},
    "turnover_per_year": "turnover/yr",
}


def portfolio_text(summary: dict) -> str:
    """The portfolio rows, each against the models' portfolio with its 90% intervals."""
    config, timing = summary["config"], summary["timing"]
    head = (
        f"portfolio of the {config['model_type']} models, {len(summary['refits']['regime'])} {config['refit']} refits "
        f"each, {summary['test_days']} test days, {len(summary['symbols'])} symbols; {timing['refits_fitted']} refits "
        f"fitted, {timing['refits_cached']} cached, {timing['seconds']} s"
    )
    table = {
        name: [row["performance"][k] for k in PORTFOLIO_COLUMNS]
        + [with_interval(row["vs_model"], "sharpe"), with_interval(row["vs_model"], "max_drawdown")]
        for name, row in summary["rows"].items()
    }
    columns = [*PORTFOLIO_COLUMNS.values(), "models-row Sharpe [90%]", "models-row DD [90%]"]
    return head + "\n" + format_table("", columns, table).lstrip("\n")
