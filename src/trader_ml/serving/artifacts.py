"""Trained models as ONNX files run by onnxruntime: metadata, input checks, the training guide's dicts.

numpy and the standard library only (onnxruntime is imported when a model is loaded), so a
serving process never needs torch or pandas.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import operator
import re
import sys
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from trader_ml import safejson
from trader_ml.baselines import behaviors, vol_buckets
from trader_ml.errors import TraderMLError
from trader_ml.health_inputs import MODEL_INPUTS, RAW_COLUMNS, model_inputs, raw_matrix
from trader_ml.schema import (
    ARTIFACT_FORMAT_VERSION,
    ARTIFACT_METADATA_KEY,
    ASSET_BOUNDS,
    ASSET_FEATURES,
    CONTEXT_BOUNDS,
    CONTEXT_FEATURES,
    FLOAT32_MAX,
    HEALTH_LATENT_DIM,
    REGIME_EMBEDDING_DIM,
    REGIMES,
    REQUIRED_CONTEXT_INDEX,
    SYMBOL_PATTERN,
    health_outputs,
    regime_output,
)
from trader_ml.serving.onnxfile import SESSION_CONFIG, MalformedModel, UnsafeModel, check_self_contained

log = logging.getLogger("trader_ml.serving")
SYMBOL = re.compile(SYMBOL_PATTERN)
MAX_LOOKBACK = 5000  # trading days: twenty years is already more than any window needs


class RegimeOutputs(NamedTuple):
    probs: np.ndarray  # (B, 5), columns in REGIMES order
    embedding: np.ndarray  # (B, 8)


class HealthOutputs(NamedTuple):
    probability: np.ndarray  # (B,) probability of not being in the worst fifth
    latent: np.ndarray  # (B, 16)
    reconstruction_error: np.ndarray  # (B,)


class ArtifactError(TraderMLError):
    """An artifact cannot be loaded or does not fit the inputs it is asked about."""


class OnnxArtifact:
    """One ONNX file: an inference session and the metadata trader-ml stored in it.

    ``outputs`` names each output the caller reads, in order, with its shape after the batch
    dimension: a file that declares other outputs is refused at load, and an answer of another
    shape fails that answer (the caller then falls back), never a later ``zip`` or index error.
    """

    def __init__(
        self, data: bytes, name: str = "artifact", outputs: Sequence[tuple[str, tuple[int, ...]]] = ()
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ArtifactError(f"onnxruntime is not importable ({e})") from None
        try:
            check_self_contained(data)
        except MalformedModel as e:
            raise ArtifactError(f"{name}: not a loadable ONNX model ({e})") from None
        except UnsafeModel as e:
            raise ArtifactError(f"{name}: refused: {e}") from None
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            for key, value in SESSION_CONFIG.items():
                options.add_session_config_entry(key, value)
            # The networks are small: one thread runs a day's batch faster than two that must meet
            # (and a Lambda of 1024 MB has less than one core to share).
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            # onnxruntime prints an "EP Error" banner with print() when a session fails: on stdout
            # it would break the JSON that predict prints there.
            with contextlib.redirect_stdout(sys.stderr):
                self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            self.session.disable_fallback()  # nor at answer time: there is no other provider to try
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ArtifactError(f"{name}: not a loadable ONNX model ({type(e).__name__})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(ARTIFACT_METADATA_KEY)
        if raw is None:
            raise ArtifactError(f"{name}: no trader-ml metadata in the ONNX file")
        try:
            self.metadata = safejson.loads_object(raw, f"{name}: its trader-ml metadata")
        except safejson.DamagedJSON as e:
            raise ArtifactError(str(e)) from None
        if self.metadata.get("format_version") != ARTIFACT_FORMAT_VERSION:
            raise ArtifactError(
                f"{name}: artifact format {str(self.metadata.get('format_version'))[:20]} is not {ARTIFACT_FORMAT_VERSION}"
            )
        self.name = name
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise ArtifactError(f"{name}: expected one float input, found {[(i.name, i.type) for i in inputs]}")
        self.input_name = inputs[0].name
        self.outputs = [(n, tuple(shape)) for n, shape in outputs]
        self._check_declared_outputs()

    def _check_declared_outputs(self) -> None:
        if not self.outputs:
            return
        declared = self.session.get_outputs()
        names = [o.name for o in declared]
        if names != [n for n, _ in self.outputs]:
            raise ArtifactError(f"{self.name}: outputs {names} are not {[n for n, _ in self.outputs]}")
        for output, (name, shape) in zip(declared, self.outputs, strict=True):
            dims = list(output.shape or [])[1:]
            fixed = [d if isinstance(d, int) else None for d in dims]
            if (
                output.type != "tensor(float)"
                or len(dims) != len(shape)
                or any(d is not None and d != want for d, want in zip(fixed, shape, strict=True))
            ):
                raise ArtifactError(
                    f"{self.name}: output {name} is {output.type} of shape {output.shape}, "
                    f"not float of shape [batch, {', '.join(map(str, shape))}]".replace(", ]", "]")
                )

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """The outputs for a batch ``x``; ArtifactError when the model fails or answers in
        another shape than it declared."""
        try:
            answers = self.session.run(None, {self.input_name: x})
        except Exception as e:  # onnxruntime's own types: a model that breaks on these inputs
            raise ArtifactError(f"{self.name}: the model failed on these inputs ({type(e).__name__})") from None
        if self.outputs:
            if len(answers) != len(self.outputs):
                raise ArtifactError(f"{self.name}: answered {len(answers)} outputs, not {len(self.outputs)}")
            for answer, (name, shape) in zip(answers, self.outputs, strict=True):
                if not isinstance(answer, np.ndarray) or answer.shape != (len(x), *shape):
                    got = getattr(answer, "shape", type(answer).__name__)
                    raise ArtifactError(f"{self.name}: output {name} has shape {got}, not {(len(x), *shape)}")
        return answers


def _number(value, column: str, what: str) -> float:
    """A JSON number as a float: None is a missing value (NaN); booleans, strings and numbers
    beyond float32's range are refused (the models compute in float32)."""
    if value is None:
        return np.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArtifactError(f"{what}: {column} is {type(value).__name__} {str(value)[:20]!r}, not a number")
    try:
        number = float(value)
    except OverflowError:
        raise ArtifactError(f"{what}: {column} is beyond float32's range") from None
    if abs(number) > FLOAT32_MAX:
        raise ArtifactError(f"{what}: {column} is {number:.3g}, beyond float32's range")
    return number


COLUMN_BOUNDS = {**CONTEXT_BOUNDS, **ASSET_BOUNDS}
PLAIN_NUMBERS = {float, int, type(None)}  # what JSON numbers and nulls parse to


def _implausible(matrix: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """Where a value lies outside the bounds ingest holds the same column to."""
    low = np.array([COLUMN_BOUNDS[c][0] for c in columns])
    high = np.array([COLUMN_BOUNDS[c][1] for c in columns])
    with np.errstate(invalid="ignore"):
        # NaN (a missing value) compares false; infinities are refused later, as infinite
        return np.isfinite(matrix) & ((matrix < low) | (matrix > high))


def _implausible_text(matrix: np.ndarray, columns: Sequence[str], i: int, j: int) -> str:
    low, high = COLUMN_BOUNDS[columns[j]]
    return f"{columns[j]} is {matrix[i, j]:.4g}, outside {low:g} .. {high:g}, not a plausible value"


def _check_plausible(matrix: np.ndarray, columns: Sequence[str], what: str) -> np.ndarray:
    """The matrix, unless a value lies outside the bounds ingest holds the same column to: a
    model asked about 1e38 would answer with confidence about nonsense."""
    bad = _implausible(matrix, columns)
    if bad.any():
        i, j = (int(k[0]) for k in np.nonzero(bad))
        raise ArtifactError(f"{what}: row {i}: {_implausible_text(matrix, columns, i, j)}")
    return matrix


def as_matrix(rows, columns: Sequence[str], what: str) -> np.ndarray:
    """Rows as a float matrix in ``columns`` order: a list of dicts keyed by column name, or a
    2-d array already in that order. Missing dict keys and None become NaN (a missing source).
    Values beyond float32 or outside ingest's plausibility bounds are refused."""
    return _check_plausible(_as_floats(rows, columns, what), columns, what)


def _row_values(rows: Sequence[dict], columns: Sequence[str]) -> list:
    """Each row's values in ``columns`` order, None where a row lacks one: rows that have every
    column (the usual day) in one C-level pass."""
    if len(columns) > 1:
        with contextlib.suppress(KeyError):
            return list(map(operator.itemgetter(*columns), rows))
    return [[r.get(c) for c in columns] for r in rows]


def _as_floats(rows, columns: Sequence[str], what: str) -> np.ndarray:
    if not isinstance(rows, (list, tuple, np.ndarray)):
        raise ArtifactError(f"{what}: expected a list of rows, got {type(rows).__name__}")
    if len(rows) and isinstance(rows[0], dict):
        if not set(map(type, rows)) <= {dict} and not all(isinstance(r, dict) for r in rows):
            raise ArtifactError(f"{what}: every row must be an object when the first one is")
        values = _row_values(rows, columns)
        if set(map(type, itertools.chain.from_iterable(values))) <= PLAIN_NUMBERS:  # one C-level pass
            # The common case in one numpy call (None becomes NaN); anything else, and any value
            # numpy or float32 cannot hold, takes the checked path below, which names it.
            with contextlib.suppress(OverflowError):
                matrix = np.array(values, dtype=np.float64).reshape(len(rows), len(columns))
                if not (np.abs(matrix) > FLOAT32_MAX).any():  # NaN compares False; an infinity is refused
                    return matrix
        return np.array([[_number(v, c, what) for v, c in zip(row, columns, strict=True)] for row in values]).reshape(
            len(rows), len(columns)
        )
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as e:
        raise ArtifactError(f"{what}: rows are not numeric ({e})") from None
    if matrix.ndim != 2 or matrix.shape[1] != len(columns):
        raise ArtifactError(
            f"{what}: expected rows of {len(columns)} values ({', '.join(columns)}), got shape {matrix.shape}"
        )
    if (np.abs(matrix[np.isfinite(matrix)]) > FLOAT32_MAX).any():
        raise ArtifactError(f"{what}: a value is beyond float32's range")
    return matrix


class ServedModel:
    """An artifact of one kind whose metadata fits this version's columns."""

    kind = ""
    outputs: tuple[tuple[str, tuple[int, ...]], ...] = ()  # what the export writes, after the batch dim

    def __init__(self, artifact: OnnxArtifact) -> None:
        kind = artifact.metadata.get("kind")
        if kind != self.kind:
            raise ArtifactError(f"{artifact.name}: holds a {str(kind)[:20]!r} model, not a {self.kind} model")
        self.artifact = artifact
        self.check(artifact.metadata)
        # One answer at load, so a model that fails every call is refused here, not on the first
        # question (its outputs' shapes are checked by run).
        artifact.run(np.zeros((1, *self.input_shape()), dtype=np.float32))

    def check(self, meta: dict) -> None:
        """Raise ArtifactError when the metadata does not fit this version."""

    def input_shape(self) -> tuple[int, ...]:
        """One input row's shape, after the batch dimension."""
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes, name: str | None = None):
        return cls(OnnxArtifact(data, name or f"{cls.kind} model", cls.outputs))

    @property
    def metadata(self) -> dict:
        return self.artifact.metadata


class RegimeModel(ServedModel):
    """A regime artifact: the last ``lookback`` context rows -> the training guide's regime dict."""

    kind = "regime"
    outputs = (("regime_probs", (len(REGIMES),)), ("regime_embedding", (REGIME_EMBEDDING_DIM,)))

    def input_shape(self) -> tuple[int, ...]:
        return (self.lookback, len(CONTEXT_FEATURES))

    def check(self, meta: dict) -> None:
        if meta.get("feature_order") != list(CONTEXT_FEATURES) or meta.get("regimes") != list(REGIMES):
            raise ArtifactError(f"{self.artifact.name}: its features or regimes differ from this version's")
        lookback = meta.get("lookback")
        if isinstance(lookback, bool) or not isinstance(lookback, int) or not 1 <= lookback <= MAX_LOOKBACK:
            raise ArtifactError(
                f"{self.artifact.name}: lookback {lookback!r} is not a whole number of days in 1..{MAX_LOOKBACK}"
            )
        self.lookback = lookback
        unseen = meta.get("unseen_columns", [])
        if not isinstance(unseen, list) or not all(isinstance(c, str) and c in CONTEXT_FEATURES for c in unseen):
            raise ArtifactError(f"{self.artifact.name}: unseen_columns {str(unseen)[:60]!r} are not context columns")
        self.unseen = [CONTEXT_FEATURES.index(c) for c in unseen]
        self.warned = False

    def window(self, rows) -> np.ndarray:
        """The checked (lookback, features) window ending with the last row."""
        matrix = as_matrix(rows, CONTEXT_FEATURES, "context rows")
        if len(matrix) < self.lookback:
            raise ArtifactError(
                f"context rows: the regime model needs the last {self.lookback} trading days, got {len(matrix)}"
            )
        window = matrix[-self.lookback :]
        if np.isinf(window).any():
            raise ArtifactError("context rows: infinite value")
        if np.isnan(window[:, REQUIRED_CONTEXT_INDEX]).any():
            raise ArtifactError(
                "context rows: SPY columns (spy_return_1d, spy_return_21d, spy_vol_21d) must not be missing"
            )
        return window

    def predict_proba(self, windows: np.ndarray) -> RegimeOutputs:
        """Probabilities and embeddings of raw windows (B, lookback, 8)."""
        return RegimeOutputs(*self.artifact.run(np.ascontiguousarray(windows, dtype=np.float32)))

    def predict(self, rows) -> dict:
        """The training guide's regime dict for the day of the last row."""
        window = self.window(rows)
        probs, embedding = self.predict_proba(window[None])
        if not (np.isfinite(probs).all() and np.isfinite(embedding).all()):
            raise ArtifactError("context rows: the model's answer is not finite for these values")
        answer = regime_output(probs[0], embedding[0])
        ignored = [CONTEXT_FEATURES[i] for i in self.unseen if np.isfinite(window[:, i]).any()]
        if ignored:
            # The model never saw these columns in training and reads them as missing.
            answer["ignored_columns"] = ignored
            if not self.warned:
                log.warning(
                    "%s: ignoring %s: missing throughout its training data", self.artifact.name, ", ".join(ignored)
                )
                self.warned = True
        return answer


def _row_name(row: dict, i: int) -> str:
    symbol = row.get("symbol")
    return symbol if isinstance(symbol, str) and SYMBOL.fullmatch(symbol) else f"row {i}"


def _screen(rows: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """(the rows that can be read, {symbol: why} of those that cannot): one bad row costs its
    own symbol, never the day. Taken only when the day as a whole did not read."""
    kept, refused = [], {}
    for i, row in enumerate(rows):
        name = _row_name(row, i)
        if name.startswith("row "):
            refused[name] = f"symbol {str(row.get('symbol'))[:40]!r} is missing or not a ticker"
            continue
        try:
            matrix = _as_floats([row], RAW_COLUMNS, name)
        except ArtifactError as e:
            refused[name] = str(e).removeprefix(f"{name}: ")
            continue
        bad = np.nonzero(_implausible(matrix, RAW_COLUMNS))
        if len(bad[0]):
            refused[name] = _implausible_text(matrix, RAW_COLUMNS, 0, int(bad[1][0]))
        else:
            kept.append(row)
    return kept, refused


def asset_rows(rows) -> tuple[list[str], np.ndarray, list[str], dict[str, str]]:
    """(symbols, feature matrix in RAW_COLUMNS order, skipped symbols, {symbol: why} of refused
    rows): rows are dicts with ``symbol``, the ten features and any long-memory columns, or a
    2-d array of the ten (or of RAW_COLUMNS; symbols are then "0", "1", ...). A long-memory
    column a row lacks is NaN. A row with a missing or non-finite feature of the ten is skipped,
    never scored as NaN. A row that is not a ticker's, holds a value that is not a number or
    lies outside ingest's bounds is refused, named by its symbol (else ``row N``), and the other
    rows are answered. Each symbol must appear once."""
    refused: dict[str, str] = {}
    if len(rows) and isinstance(rows[0], dict):
        try:
            matrix = as_matrix(rows, RAW_COLUMNS, "feature rows")
        except ArtifactError:
            matrix = None
        symbols = [r.get("symbol") for r in rows] if matrix is not None else []
        if matrix is None or not (set(map(type, symbols)) <= {str} and all(map(SYMBOL.fullmatch, symbols))):
            if not all(isinstance(r, dict) for r in rows):
                raise ArtifactError("feature rows: every row must be an object when the first one is")
            rows, refused = _screen(rows)  # the usual day reads whole above, in C; this one row by row
            matrix = as_matrix(rows, RAW_COLUMNS, "feature rows").reshape(len(rows), len(RAW_COLUMNS))
            symbols = [r["symbol"] for r in rows]
        if len(set(symbols)) != len(symbols):
            seen: set[str] = set()
            for symbol in symbols:
                if symbol in seen:
                    raise ArtifactError(f"feature rows: symbol {symbol} appears more than once")
                seen.add(symbol)
    else:
        try:
            shape = np.shape(rows)
        except ValueError:  # ragged rows: as_matrix says what is wrong with them
            shape = ()
        wide = len(shape) == 2 and shape[1] == len(RAW_COLUMNS)
        matrix = with_long_columns(as_matrix(rows, RAW_COLUMNS if wide else ASSET_FEATURES, "feature rows"))
        symbols = [str(i) for i in range(len(rows))]
    finite = np.isfinite(matrix[:, : len(ASSET_FEATURES)]).all(axis=1) & ~np.isinf(matrix).any(axis=1)
    skipped = [s for s, ok in zip(symbols, finite, strict=True) if not ok]
    return [s for s, ok in zip(symbols, finite, strict=True) if ok], matrix[finite], skipped, refused


def with_long_columns(features: np.ndarray) -> np.ndarray:
    """Rows of the ten features widened to RAW_COLUMNS (the long-memory columns NaN); rows
    that have them already pass unchanged."""
    features = np.asarray(features, dtype=np.float64)
    if features.shape[1] == len(RAW_COLUMNS):
        return features
    return raw_matrix(dict(zip(ASSET_FEATURES, features.T, strict=True)), len(features))


def health_dicts(scores, latents, features: np.ndarray, boundaries) -> list[dict]:
    """The training guide's health dicts; baseline and model share the bucket and behaviour rules."""
    buckets = vol_buckets(features[:, ASSET_FEATURES.index("vol_21d")], tuple(boundaries))
    return health_outputs(scores, buckets, behaviors(features), latents)


class HealthModel(ServedModel):
    """A health artifact: feature rows -> the training guide's health dict per asset."""

    kind = "health"
    outputs = (("health_probability", ()), ("latent", (HEALTH_LATENT_DIM,)), ("reconstruction_error", ()))

    def input_shape(self) -> tuple[int, ...]:
        return (len(MODEL_INPUTS) if self.day_relative else len(ASSET_FEATURES),)

    def check(self, meta: dict) -> None:
        if meta.get("feature_order") != list(ASSET_FEATURES):
            raise ArtifactError(f"{self.artifact.name}: its features differ from this version's")
        # Models before the day-relative inputs read the ten features alone.
        inputs = meta.get("model_inputs", list(ASSET_FEATURES))
        if inputs not in (list(ASSET_FEATURES), list(MODEL_INPUTS)):
            raise ArtifactError(f"{self.artifact.name}: its model inputs differ from this version's")
        self.day_relative = inputs == list(MODEL_INPUTS)
        bounds = meta.get("vol_boundaries")
        numeric = isinstance(bounds, list) and len(bounds) == 2
        numeric = numeric and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        if not (numeric and np.isfinite(bounds).all() and 0 <= bounds[0] <= bounds[1]):
            raise ArtifactError(f"{self.artifact.name}: vol_boundaries {bounds!r} are not two ascending volatilities")
        self.vol_boundaries = (float(bounds[0]), float(bounds[1]))

    def predict_proba(self, features: np.ndarray, day: np.ndarray | None = None) -> HealthOutputs:
        """Health probability, latent and reconstruction error of feature rows (B, 10) or
        (B, RAW_COLUMNS). ``day`` labels each row's day, the universe its volatility is read
        against (None: all rows are one day's universe)."""
        return self.run_inputs(self.inputs(features, day))

    def inputs(self, features: np.ndarray, day: np.ndarray | None = None) -> np.ndarray:
        """The network's input rows for feature rows (see ``predict_proba``)."""
        raw = with_long_columns(features)
        return model_inputs(raw, day) if self.day_relative else raw[:, : len(ASSET_FEATURES)]

    def run_inputs(self, x: np.ndarray) -> HealthOutputs:
        return HealthOutputs(*self.artifact.run(np.ascontiguousarray(x, dtype=np.float32)))

    def predict(self, rows) -> tuple[dict[str, dict], list[str], dict[str, str]]:
        """({symbol: health dict}, skipped symbols, {symbol: why} of refused rows) for rows of one day."""
        symbols, matrix, skipped, refused = asset_rows(rows)
        if not symbols:
            return {}, skipped, refused
        probability, latent, _ = self.predict_proba(matrix)
        if not (np.isfinite(probability).all() and np.isfinite(latent).all()):
            raise ArtifactError("feature rows: the model's answer is not finite for these values")
        answers = dict(zip(symbols, health_dicts(probability, latent, matrix, self.vol_boundaries), strict=True))
        return answers, skipped, refused
