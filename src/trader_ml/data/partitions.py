"""Date-partitioned parquet tables in a store: one ``date=YYYY-MM-DD/part.parquet`` per day."""

from __future__ import annotations

import datetime as dt
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trader_ml.data import completeness
from trader_ml.data.validation import validate_context, validate_features
from trader_ml.errors import ValidationError
from trader_ml.schema import (
    ASSET_FEATURES,
    CONTEXT_COLUMNS,
    CONTEXT_FEATURES,
    FEATURE_COLUMNS,
    LONG_VOL_FEATURES,
    PARTITION_FILE,
    TABLE_PREFIX,
    partition_day,
    partition_key,
)
from trader_ml.store import Store

DECODE_THREADS = 4
ENCODE_THREADS = 2
# A day's partition is a few kB: zstd saves almost nothing there and costs three times snappy's
# time per file, which is most of a long ingest (docs/benchmarks.md). Readers take either.
PARTITION_CODEC = "snappy"
_FLOAT = pa.float64()
ARROW_SCHEMAS = {
    "context": pa.schema([("date", pa.date32()), *[(c, _FLOAT) for c in CONTEXT_FEATURES]]),
    "features": pa.schema(
        [("date", pa.date32()), ("symbol", pa.string()), *[(c, _FLOAT) for c in (*ASSET_FEATURES, *LONG_VOL_FEATURES)]]
    ),
    "truth_regime": pa.schema([("date", pa.date32()), ("regime", pa.string())]),
    "truth_health": pa.schema([("date", pa.date32()), ("symbol", pa.string()), ("health_state", pa.string())]),
}
VALIDATORS = {"context": validate_context, "features": validate_features}


def encode_days(table_name: str, frame: pd.DataFrame) -> list[tuple[str, bytes]]:
    """Serialise a frame sorted by date into one parquet file per day: (key, bytes) pairs."""
    table = pa.Table.from_pandas(frame, schema=ARROW_SCHEMAS[table_name], preserve_index=False)
    days = frame["date"].to_numpy().astype("datetime64[D]")
    bounds = np.flatnonzero(np.r_[True, days[1:] != days[:-1], True])

    def encode(lo: int, hi: int) -> tuple[str, bytes]:
        buffer = io.BytesIO()
        pq.write_table(table.slice(lo, hi - lo), buffer, compression=PARTITION_CODEC)
        return partition_key(table_name, str(days[lo])), buffer.getvalue()

    # pyarrow encodes without the GIL: two threads keep both cores busy on a long ingest.
    with ThreadPoolExecutor(ENCODE_THREADS) as pool:
        return list(pool.map(encode, bounds[:-1], bounds[1:]))


def stored_days(store: Store, table_name: str) -> list[str]:
    """Days (``YYYY-MM-DD``, ascending) that have a partition of ``table_name``."""
    days = (partition_day(k) for k in store.list(TABLE_PREFIX[table_name]))
    return sorted(d for d in days if d is not None)


def select_days(
    days: list[str],
    max_days: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[str]:
    """Days in [start, end]; with ``max_days``, only those within N calendar days of the newest.

    "Within N calendar days" keeps day d when ``newest - d < N`` (N = 365 is one year).
    """
    chosen = [d for d in days if (start is None or d >= start.isoformat()) and (end is None or d <= end.isoformat())]
    if max_days is not None and chosen:
        newest = dt.date.fromisoformat(chosen[-1])
        first = (newest - dt.timedelta(days=max_days - 1)).isoformat()
        chosen = [d for d in chosen if d >= first]
    return chosen


def last_day_before(end: dt.date | None, until: dt.date | None) -> dt.date | None:
    """The last day a read may return: ``end`` inclusive, and strictly before ``until``."""
    if until is None:
        return end
    before = until - dt.timedelta(days=1)
    return before if end is None else min(end, before)


def date_window(
    frame: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None, until: dt.date | None = None
) -> pd.DataFrame:
    """Rows dated ``start`` .. ``end`` (inclusive) and strictly before ``until``."""
    last = last_day_before(end, until)
    dates = pd.DatetimeIndex(frame["date"])
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= dates >= pd.Timestamp(start)
    if last is not None:
        keep &= dates <= pd.Timestamp(last)
    return frame if keep.all() else frame[keep].reset_index(drop=True)


def _decode(store: Store, key: str, data: bytes) -> pa.Table:
    try:
        # ParquetFile, not read_table: a one-file read needs no dataset machinery (2.5x faster
        # over thousands of daily files).
        return pq.ParquetFile(pa.BufferReader(data)).read()
    except (pa.ArrowInvalid, OSError) as e:
        raise ValidationError(f"{store.describe(key)}: unreadable parquet ({first_line(e)})") from None


def read_table(
    store: Store,
    table_name: str,
    max_days: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    today: dt.date | None = None,
) -> pd.DataFrame:
    """All partitions of a table in range, concatenated and validated; empty frame if none.
    Refused while a day in range is incomplete (an ingest is writing it or was cut off)."""
    days = select_days(stored_days(store, table_name), max_days, start, end)
    cut = completeness.unfinished(store, days) if days else []
    if cut:
        raise ValidationError(completeness.unfinished_message(store, cut))
    return _read_partitions(store, [partition_key(table_name, d) for d in days], days, table_name, today)


def _read_partitions(
    store: Store, keys: list[str], days: list[str], table_name: str, today: dt.date | None
) -> pd.DataFrame:
    if not days:
        return pd.DataFrame(columns=ARROW_SCHEMAS[table_name].names)
    with ThreadPoolExecutor(DECODE_THREADS) as pool:  # arrow decodes without the GIL
        tables = list(pool.map(lambda kb: _decode(store, *kb), zip(keys, store.read_many(keys), strict=True)))
    lengths = np.array([t.num_rows for t in tables])
    for key, day, t in zip(keys, days, tables, strict=True):
        if "date" in t.column_names and t.num_rows:
            file_days = pc.unique(t["date"].cast(pa.string())).to_pylist()
            if file_days != [day]:
                raise ValidationError(f"{store.describe(key)}: holds rows dated {file_days[:3]}, not {day}")
    try:
        frame = pa.concat_tables(tables, promote_options="permissive").to_pandas(date_as_object=False)
    except pa.ArrowInvalid as e:
        raise ValidationError(
            f"{store.describe(keys[0].rpartition('date=')[0])}: partitions disagree on schema ({e})"
        ) from None
    validate = VALIDATORS.get(table_name)
    if validate is None:
        return frame
    ends = np.cumsum(lengths)

    def locate(i: int) -> str:
        part = int(np.searchsorted(ends, i, side="right"))
        return f"{store.describe(keys[part])}, row {i - (ends[part] - lengths[part])}"

    return validate(frame, locate, today)


def read_folder(path: str, table_name: str, today: dt.date | None = None) -> pd.DataFrame:
    """A folder of ``date=YYYY-MM-DD/part.parquet`` partitions (a store's ``data/context``), or
    a store's root folder, read as one table."""
    from trader_ml.store import LocalStore

    root = Path(path)
    if (root / TABLE_PREFIX[table_name]).is_dir():
        root = root / TABLE_PREFIX[table_name]
    folder = LocalStore(root)
    keys = [k for k in folder.list("") if k.count("/") == 1 and partition_day(k) is not None]
    if not keys:
        raise ValidationError(
            f"{path}: a folder without date=YYYY-MM-DD/part.parquet partitions; --data takes a parquet file "
            f"(trader-ml export writes one) or a store's data/{table_name} folder"
        )
    return _read_partitions(folder, keys, [partition_day(k) for k in keys], table_name, today)


def file_columns(path: str) -> list[str]:
    """Column names of a parquet file (or of a partition folder's first file)."""
    target = Path(path)
    if target.is_dir():
        first = next(iter(sorted(target.rglob(PARTITION_FILE))), None)
        if first is None:
            raise ValidationError(f"{path}: a folder without parquet partitions")
        target = first
    try:
        return pq.read_schema(target).names
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file") from None
    except (pa.ArrowInvalid, OSError) as e:
        if looks_like_csv(target):
            raise ValidationError(
                f"{path}: not a parquet file (it reads as CSV text); --data takes a parquet table. For a CSV of "
                f"closing prices: trader-ml ingest --source csv --prices {path} --store ./store, then "
                "trader-ml export --store ./store --table context --out context.parquet (and --table features) "
                "writes the parquet tables; or train from the store itself with --store ./store"
            ) from None
        raise ValidationError(f"{path}: unreadable parquet ({first_line(e)})") from None


def looks_like_csv(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = text.splitlines()
    return bool(lines) and "," in lines[0]  # a header of comma-separated names


OTHER_TABLE = {
    "context": ("features", "the health model (train_health.py, trader-ml train-health)"),
    "features": ("context", "the regime model (train_regime.py, trader-ml train-regime)"),
}


def check_table_kind(path: str, names: list[str], table_name: str) -> None:
    """A features table given where context is read (or the other way round) names the script
    that reads it, rather than listing missing columns."""
    other, reader = OTHER_TABLE[table_name]
    required = {"context": CONTEXT_COLUMNS, "features": FEATURE_COLUMNS}
    if not set(required[table_name]) <= set(names) and set(required[other]) <= set(names):
        raise ValidationError(f"{path}: holds {other} rows, which {reader} trains on; this reads {table_name} rows")


def read_file(path: str, table_name: str, today: dt.date | None = None) -> pd.DataFrame:
    """One parquet file holding a whole context or features table (the training guide's
    ``--data``), or a folder of a store's partitions."""
    if Path(path).is_dir():
        return read_folder(path, table_name, today)
    names = file_columns(path)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValidationError(f"{path}: column(s) {', '.join(repeated)} appear more than once")
    if table_name in OTHER_TABLE:
        check_table_kind(path, names, table_name)
    try:
        frame = pq.read_table(path).to_pandas(date_as_object=False)
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise ValidationError(f"{path}: unreadable parquet ({first_line(e)})") from None
    return VALIDATORS[table_name](frame, path, today)


def first_line(error: Exception) -> str:
    """Arrow's messages can run to a schema dump: the first line says what went wrong."""
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


def no_data_message(store: Store, table: str) -> str:
    return (
        f"No historical data found: {store.describe(TABLE_PREFIX[table])} holds no partitions. "
        f"Ingest some first, e.g. trader-ml ingest --source sample --store {store.url}"
    )
