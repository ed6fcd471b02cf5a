"""Column names, regimes, store layout and the constants every stage shares (standard library only)."""

from __future__ import annotations

import datetime as _dt
import re as _re

# Context data: one row per trading day (the training guide's "Context Data" columns, in model order).
CONTEXT_FEATURES: tuple[str, ...] = (
    "spy_return_1d",
    "spy_return_21d",
    "spy_vol_21d",
    "yield_slope",
    "credit_spread_proxy",
    "vixy_return_21d",
    "risk_off_proxy",
    "gdelt_avg_tone",
)
CONTEXT_COLUMNS: tuple[str, ...] = ("date", *CONTEXT_FEATURES)
# SPY is the one context input every source must provide; the rest may be NaN (unavailable).
REQUIRED_CONTEXT_FEATURES: tuple[str, ...] = ("spy_return_1d", "spy_return_21d", "spy_vol_21d")
# Their positions in a context row, for checking a matrix of rows.
REQUIRED_CONTEXT_INDEX: list[int] = [CONTEXT_FEATURES.index(name) for name in REQUIRED_CONTEXT_FEATURES]

# Features data: one row per symbol per trading day (the training guide's "Features Data" columns).
ASSET_FEATURES: tuple[str, ...] = (
    "return_1d",
    "return_5d",
    "return_21d",
    "return_63d",
    "vol_21d",
    "vol_63d",
    "drawdown_21d",
    "drawdown_63d",
    "rel_strength_21d",
    "rel_strength_63d",
)
FEATURE_COLUMNS: tuple[str, ...] = ("date", "symbol", *ASSET_FEATURES)
# Longer memory of volatility, beyond the guide's ten: optional per-asset columns that ingest
# computes from the same closes and writes beside them (NaN until a symbol has the history). A
# table with only the ten still trains and serves; the health model then reads these as missing.
LONG_VOL_FEATURES: tuple[str, ...] = ("vol_126d", "vol_252d", "vol_ewm_42d")
STORED_FEATURE_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, *LONG_VOL_FEATURES)

# The model classes, the first of each the default: the networks, the training options, the
# command line and the backtest all read them from here.
# The two kinds of model the registry versions and the backtest judges.
KINDS: tuple[str, ...] = ("regime", "health")
TRADING_DAYS_PER_YEAR = 252  # annualises volatility, Sharpe and rates
# US markets' clock: a day's close is final (and a daily ingest may read it) after 16:30 New York.
MARKET_TIMEZONE = "America/New_York"
CLOSE_SETTLED = _dt.time(16, 30)
TRAIN_TIME = _dt.time(7, 0)  # the scheduled monthly training: the morning of the first trading day, local
REGIME_TYPES: tuple[str, ...] = ("gru", "transformer")
REGIME_LAYERS = {"gru": 1, "transformer": 2}  # layers of each regime network when none are asked for
HEALTH_TYPES: tuple[str, ...] = ("autoencoder", "vae")

REGIMES: tuple[str, ...] = (
    "calm_uptrend",
    "risk_on_trend",
    "risk_off_trend",
    "choppy",
    "high_vol_panic",
)
VOL_BUCKETS: tuple[str, ...] = ("low", "med", "high")
BEHAVIORS: tuple[str, ...] = ("momentum", "mean_reversion", "mixed")
HEALTH_STATES: tuple[str, ...] = ("healthy", "neutral", "distressed")

# A symbol: letters, digits and . - _ ^ = (BRK.B, ^GSPC, EURUSD=X), at most 32 characters. No
# path separators or control characters: symbols become parts of keys, files and logs. Matched
# whole (re.fullmatch), so no trailing newline slips through as "$" would let it.
SYMBOL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._^=-]{0,31}"
FLOAT32_MAX = 3.4028234663852886e38  # the models compute in float32: larger inputs overflow

# What a real market can do: a day's return of -100% .. +1000%, an annualised volatility up to
# 2000%, a drawdown in [-1, 0]. Values outside are a unit mistake (basis points stored as
# fractions) or corruption: ingest and validate refuse them, and serving refuses to answer them.
_RETURN = (-1.0, 10.0)
_LONG_RETURN = (-1.0, 1000.0)
ASSET_BOUNDS: dict[str, tuple[float, float]] = {
    "return_1d": _RETURN,
    "return_5d": _LONG_RETURN,
    "return_21d": _LONG_RETURN,
    "return_63d": _LONG_RETURN,
    "vol_21d": (0.0, 20.0),
    "vol_63d": (0.0, 20.0),
    **{name: (0.0, 20.0) for name in LONG_VOL_FEATURES},
    "drawdown_21d": (-1.0, 0.0),
    "drawdown_63d": (-1.0, 0.0),
    "rel_strength_21d": (-1001.0, 1001.0),
    "rel_strength_63d": (-1001.0, 1001.0),
}
CONTEXT_BOUNDS: dict[str, tuple[float, float]] = {
    "spy_return_1d": _RETURN,
    "spy_return_21d": _LONG_RETURN,
    "spy_vol_21d": (0.0, 20.0),
    "yield_slope": (-50.0, 50.0),
    "credit_spread_proxy": (-1.0, 100.0),
    "vixy_return_21d": (-1.0, 1000.0),
    "risk_off_proxy": (-1.0, 1000.0),
    "gdelt_avg_tone": (-100.0, 100.0),
}

REGIME_EMBEDDING_DIM = 8
HEALTH_LATENT_DIM = 16

# Tickers that feed the context row besides the per-asset universe.
SPY, HYG, IEF, VIXY, TLT = "SPY", "HYG", "IEF", "VIXY", "TLT"
CONTEXT_TICKERS: tuple[str, ...] = (SPY, HYG, IEF, VIXY, TLT)

# Store layout (DESIGN.md): date-partitioned tables, one parquet file per day.
TABLE_PREFIX = {
    "context": "data/context/",
    "features": "data/features/",
    "truth_regime": "truth/regime/",
    "truth_health": "truth/health/",
}
PARTITION_FILE = "part.parquet"
# Each day's context row and feature rows also as small JSON files: what serving reads, so a
# Lambda needs no parquet reader (pyarrow alone would break its 250 MB limit).
DAILY_PREFIX = "data/daily/"
DAILY_FILES = ("context.json", "features.json")
# A day's ingest is a transaction: its marker, listing the day's files, is written only after
# every one of them; a day without a marker is incomplete and the next ingest redoes it.
DAY_MARKER_PREFIX = "data/complete/"
DAY_MARKER_FILE = "day.json"
# Written before a run's first data file and deleted once every day it names is whole again.
INGEST_JOURNAL_KEY = f"{DAY_MARKER_PREFIX}ingest-in-progress.json"
# A day whose prices look wrong against their own history (data/suspect.py): its reasons, and
# the user's acceptance once given. Outside the day's marker: a later day's ingest may mark it.
SUSPECT_PREFIX = "data/suspect/"
SUSPECT_FILE = "suspect.json"
MODELS_PREFIX = "models/"
# The artifact format, written by training and read by serving: the ONNX metadata entry that
# carries an artifact's JSON, and the version of what that JSON holds.
ARTIFACT_METADATA_KEY = "trader_ml"
ARTIFACT_FORMAT_VERSION = 1
LATEST_KEY = "models/latest.json"
REPORTS_PREFIX = "reports/"
PREDICTIONS_PREFIX = "predictions/"


def predictions_key(day: str) -> str:
    return f"{PREDICTIONS_PREFIX}date={day}/predictions.json"


def partition_key(table: str, day: str) -> str:
    """Store key of one day's partition, e.g. ``data/context/date=2024-01-02/part.parquet``."""
    return f"{TABLE_PREFIX[table]}date={day}/{PARTITION_FILE}"


def daily_key(day: str, name: str) -> str:
    """Store key of one day's JSON rows, e.g. ``data/daily/date=2024-01-02/context.json``."""
    return f"{DAILY_PREFIX}date={day}/{name}"


def suspect_key(day: str) -> str:
    """Store key of a suspect day's reasons, e.g. ``data/suspect/date=2024-01-02/suspect.json``."""
    return f"{SUSPECT_PREFIX}date={day}/{SUSPECT_FILE}"


def day_marker_key(day: str) -> str:
    """Store key of a day's completion marker, e.g. ``data/complete/date=2024-01-02/day.json``."""
    return f"{DAY_MARKER_PREFIX}date={day}/{DAY_MARKER_FILE}"


_DAY = _re.compile(r"\d{4}-\d{2}-\d{2}")


def is_day(text: object) -> bool:
    """Whether ``text`` is a calendar day written ``YYYY-MM-DD`` (not ``20200115``, which
    ``date.fromisoformat`` also takes, nor ``2020-02-30``)."""
    if not isinstance(text, str) or not _DAY.fullmatch(text):
        return False
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def partition_day(key: str) -> str | None:
    """The ``YYYY-MM-DD`` a partition key names, or None when the key is not a partition (a
    junk folder such as ``date=zzzz`` names no day)."""
    head, _, name = key.rpartition("/")
    segment = head.rpartition("/")[2]
    if name not in (PARTITION_FILE, *DAILY_FILES, DAY_MARKER_FILE) or not segment.startswith("date="):
        return None
    day = segment[5:]
    return day if is_day(day) else None


def _unit_sum(values) -> list[float]:
    floats = [float(v) for v in values]
    total = sum(floats)
    return [v / total for v in floats]


def regime_output(regime_probs, regime_embedding) -> dict:
    """The training guide's regime dict from 5 probabilities and an 8-dim embedding (any float sequences)."""
    probs = _unit_sum(regime_probs)
    best = max(range(len(REGIMES)), key=probs.__getitem__)
    return {
        "regime_label": REGIMES[best],
        "regime_probs": dict(zip(REGIMES, probs, strict=True)),
        "regime_embedding": [float(v) for v in regime_embedding],
    }


def health_outputs(health_scores, vol_buckets, behaviors, latents) -> list[dict]:
    """The training guide's health dict of each asset: the score held to 0..1, the latent as
    Python floats. Built for every asset at once (``tolist`` converts in C): a day of 500
    symbols is the served answer's largest part."""
    buckets, kinds = list(map(str, vol_buckets)), list(map(str, behaviors))
    if not (set(buckets) <= set(VOL_BUCKETS) and set(kinds) <= set(BEHAVIORS)):
        raise ValueError(f"unknown vol_bucket or behavior among {sorted(set(buckets) | set(kinds))}")
    scores = [min(max(s, 0.0), 1.0) for s in map(float, health_scores)]
    latent_lists = [[float(v) for v in z] for z in latents] if isinstance(latents, list) else latents.tolist()
    return [
        {"health_score": s, "vol_bucket": b, "behavior": k, "latent": z}
        for s, b, k, z in zip(scores, buckets, kinds, latent_lists, strict=True)
    ]
