"""AWS Lambda entry point: ``trader_ml.serving.handler.handler``.

The predictor is built once per container, at init, from ``TRADER_ML_STORE`` (for example
``s3://investment-system-data``); ``TRADER_ML_MODEL_TTL_SECONDS`` sets how often it looks for a
new version (default 600). Two event shapes:

- a direct invoke ``{"context_rows": [...], "feature_rows": [...]}`` (either or both) returns
  the predictions;
- an EventBridge scheduled event reads the newest day (or ``detail.date``) from the store's
  ``data/daily/`` and writes ``predictions/date=YYYY-MM-DD/predictions.json``.

Every answer is a JSON object with ``ok``; a bad event gets ``{"ok": false, "error": ...}``,
never a stack trace.
"""

from __future__ import annotations

import json
import logging
import os

from trader_ml.errors import TraderMLError
from trader_ml.schema import is_day
from trader_ml.serving.daily import load_day, write_predictions
from trader_ml.serving.holdings import portfolio_answer
from trader_ml.serving.predictor import DEFAULT_TTL_SECONDS, Predictor
from trader_ml.serving.quality import data_quality, warning_line

STORE_ENV = "TRADER_ML_STORE"
TTL_ENV = "TRADER_ML_MODEL_TTL_SECONDS"
log = logging.getLogger("trader_ml.serving")
# INFO for this package's loggers only: the Lambda runtime's root handler passes them on, and
# importing the handler never changes the level of anyone else's logging.
logging.getLogger("trader_ml").setLevel(logging.INFO)

# No S3 request starts later than this into an invocation: with serving's per-request limits
# (store.SERVING_TIMEOUTS) the function answers well inside deploy/template.yaml's 120 s.
INVOCATION_SECONDS = 75.0

_predictor: Predictor | None = None


def predictor() -> Predictor:
    """The container's predictor, built on first use from the environment."""
    global _predictor
    if _predictor is None:
        url = os.environ.get(STORE_ENV)
        if not url:
            raise TraderMLError(f"{STORE_ENV} is not set: it names the store holding models/ and data/")
        _predictor = Predictor.from_store(url, ttl_seconds=float(os.environ.get(TTL_ENV, DEFAULT_TTL_SECONDS)))
    return _predictor


def daily_answer(model: Predictor, day: str | None = None, write: bool = False) -> dict:
    """Predictions for a stored day: what the schedule writes and ``trader-ml predict`` prints."""
    if model.store is None:
        raise TraderMLError(f"the store cannot be opened ({model.problem})")
    inputs = load_day(model.store, day)
    health, skipped, refused = model.predict_health(inputs.feature_rows)
    model.last_input_flags = model.input_flags(inputs.context_rows, inputs.feature_rows)
    regime = model.predict_regime(inputs.context_rows)
    left = {s: "skipped: a feature is missing" for s in skipped} | {s: f"refused: {why}" for s, why in refused.items()}
    answer = {
        "ok": True,
        "date": inputs.date,
        "regime": regime,
        "health": health,
        "skipped": skipped,
        "refused": refused,
        "portfolio": portfolio_answer(
            inputs.date, regime, model.exposure_prior(), inputs.context_rows, inputs.feature_rows, health, left
        ),
        "data_quality": data_quality(model, model.store, inputs),
        "written": [],
    }
    if write:
        answer["written"] = [write_predictions(model.store, {k: v for k, v in answer.items() if k != "written"})]
    return answer


def is_scheduled(event: dict) -> bool:
    return event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event"


def handle(event: object, model: Predictor) -> dict:
    if not isinstance(event, dict):
        return {"ok": False, "error": "the event must be a JSON object"}
    if is_scheduled(event):
        detail = event.get("detail", {})
        if detail is None:
            detail = {}
        if not isinstance(detail, dict):  # never read as "the newest day": the sender meant something
            return {
                "ok": False,
                "error": f"detail must be an object (optionally with date), not {type(detail).__name__}",
            }
        day = detail.get("date")
        if day is not None and not is_day(day):
            return {
                "ok": False,
                "error": f"invalid date in detail.date {str(day)[:40]!r}: expected a YYYY-MM-DD string",
            }
        answer = daily_answer(model, day, write=True)
        warning = warning_line(answer)
        if warning:  # the CLI prints it; the function's log is where a Lambda's user reads it
            log.warning("%s", warning)
        return answer
    if "context_rows" not in event and "feature_rows" not in event:
        return {"ok": False, "error": "unrecognised event: send context_rows and/or feature_rows, or a scheduled event"}
    answer: dict = {"ok": True}
    for key in ("context_rows", "feature_rows"):
        if key in event and not isinstance(event[key], list):
            return {"ok": False, "error": f"{key} must be a list of rows"}
    if "context_rows" in event:
        answer["regime"] = model.predict_regime(event["context_rows"])
    if "feature_rows" in event:
        answer["health"], answer["skipped"], answer["refused"] = model.predict_health(event["feature_rows"])
    model.last_input_flags = model.input_flags(event.get("context_rows"), event.get("feature_rows"))
    return answer


def invocation_line(answer: dict, flags: list[str]) -> str:
    """One JSON line per invocation, for CloudWatch's metric filters (deploy/template.yaml): which
    model answered, which version, why it fell back, and which inputs lay outside training."""
    regime = answer.get("regime") or {}
    health = list((answer.get("health") or {}).values())
    fallbacks = sorted({a.get("fallback_reason") for a in [regime, *health] if a.get("fallback_reason")})
    line = {
        "event": "trader_ml.invocation",
        "ok": bool(answer.get("ok")),
        "date": answer.get("date"),
        "regime_source": regime.get("model_source"),
        "regime_version": regime.get("model_version"),
        "health_sources": sorted({a.get("model_source") for a in health}),
        "health_versions": sorted({a.get("model_version") for a in health}),
        "fallback": bool(fallbacks),
        "fallback_reasons": [r[:200] for r in fallbacks],
        "drift_flags": flags,
        "drift_count": len(flags),
    }
    if not answer.get("ok"):
        line["error"] = str(answer.get("error"))[:200]
    return json.dumps(line)


def handler(event, context=None) -> dict:
    model = None
    try:
        model = predictor()
        model.last_input_flags = []
        if model.store is None:
            answer = handle(event, model)
        else:
            with model.store.deadline(INVOCATION_SECONDS):
                answer = handle(event, model)
    except TraderMLError as e:
        answer = {"ok": False, "error": str(e)}
    except Exception as e:  # a bug: log it, answer without a stack trace
        log.exception("unexpected error")
        answer = {"ok": False, "error": f"internal error ({type(e).__name__}); see the function's logs"}
    log.info(invocation_line(answer, getattr(model, "last_input_flags", []) or []))
    return answer


if os.environ.get(STORE_ENV):  # load the models at init, once per container
    try:
        predictor()
    except Exception as e:  # noqa: BLE001 - the function must start whatever the store holds
        log.warning("predictor not ready at init: %s", e)
