"""PyTorch -> one self-contained ONNX file with trader-ml metadata, checked before it exists.

The export is compared with the PyTorch module on real inputs (max abs difference <= 1e-5 on
every output); an export that fails the check is never returned, so it can never be written.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import warnings
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch

from trader_ml import __version__
from trader_ml.errors import TraderMLError
from trader_ml.schema import ARTIFACT_FORMAT_VERSION, ARTIFACT_METADATA_KEY

PARITY_TOLERANCE = 1e-5
OPSET = 17


class ExportError(TraderMLError):
    """The ONNX file does not compute what the PyTorch model computes."""


def artifact_header(kind: str) -> dict:
    """What every exported model says about itself: format, package version, creation time."""
    return {
        "kind": kind,
        "format_version": ARTIFACT_FORMAT_VERSION,
        "package_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def parity_gap(module: torch.nn.Module, data: bytes, input_name: str, inputs: Sequence[np.ndarray]) -> float:
    """Largest absolute difference between PyTorch and onnxruntime over ``inputs`` and outputs."""
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    gap = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = module(torch.as_tensor(x))
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, {input_name: x})
        for g, e in zip(got, expected, strict=True):
            gap = max(gap, float(np.max(np.abs(g - e.numpy()))))
    return gap


def to_onnx(
    module: torch.nn.Module,
    example: np.ndarray,
    input_name: str,
    output_names: Sequence[str],
    metadata: dict,
    parity_inputs: Sequence[np.ndarray],
) -> tuple[bytes, float]:
    """(ONNX bytes with ``metadata`` as JSON under ``trader_ml``, parity gap); batch size is dynamic."""
    module = module.eval().cpu()
    unfit = [name for name, buffer in module.named_buffers() if name.endswith("fitted") and not bool(buffer)]
    if unfit:
        raise ExportError(f"the input scaler {unfit[0].removesuffix('.fitted')} was never fit: fit it on training rows")
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in (input_name, *output_names)}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder kernel has no ONNX form
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
            torch.onnx.export(
                module,
                (torch.as_tensor(example),),
                buffer,
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    entry = proto.metadata_props.add()
    entry.key, entry.value = ARTIFACT_METADATA_KEY, json.dumps(metadata, sort_keys=True)
    data = proto.SerializeToString()
    gap = parity_gap(module, data, input_name, parity_inputs)
    if not gap <= PARITY_TOLERANCE:
        raise ExportError(
            f"the ONNX export differs from the PyTorch model by {gap:.2e} (limit {PARITY_TOLERANCE:.0e}); "
            "nothing was written"
        )
    return data, gap


def parity_batches(windows: np.ndarray, sizes: Sequence[int] = (1, 64)) -> list[np.ndarray]:
    """Real inputs for the check: the first window alone, and a batch of up to 64."""
    return [np.ascontiguousarray(windows[:size]) for size in sizes if len(windows)]
