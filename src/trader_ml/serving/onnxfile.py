"""What an ONNX file asks onnxruntime to read besides itself, found from its protobuf bytes.

A tensor may keep its values in an "external data" file, named by a path relative to where the
model is loaded from. onnxruntime refuses absolute and ``..`` paths but follows relative ones,
so a crafted artifact could read ``secret.txt`` (or ``.aws/credentials`` from a home folder)
into its weights and from there into served answers. trader-ml writes every value inside the
file, so an artifact with any tensor stored elsewhere is refused before a session is made.

The protobuf wire format is walked by hand (standard library only: the Lambda bundle has no
``onnx`` package), descending into every message that can hold a tensor: the graph's
initializers and sparse initializers, node attributes (``Constant`` values and subgraphs of
``If``/``Loop``/``Scan``), functions (their nodes and their attributes' defaults) and training
graphs. ``CHILDREN`` lists every field of onnx.proto3 that can hold a tensor, however deep: its
test derives the same table from onnx's own protobuf descriptors, so a field left out fails there.

A second lock stands behind the walk: ``SESSION_CONFIG`` points onnxruntime's folder for
external data at a path under ``os.devnull``, which cannot be a folder, so a tensor the walk
missed would fail to load instead of reading a file.
"""

from __future__ import annotations

import os

from trader_ml.errors import TraderMLError

# Message type -> {field number: message type of that field} (onnx.proto3's numbering).
MODEL, GRAPH, NODE, ATTRIBUTE, TENSOR, SPARSE, FUNCTION, TRAINING = range(8)
CHILDREN: dict[int, dict[int, int]] = {
    MODEL: {7: GRAPH, 20: TRAINING, 25: FUNCTION},
    GRAPH: {1: NODE, 5: TENSOR, 15: SPARSE},
    NODE: {5: ATTRIBUTE},
    ATTRIBUTE: {5: TENSOR, 6: GRAPH, 10: TENSOR, 11: GRAPH, 22: SPARSE, 23: SPARSE},
    SPARSE: {1: TENSOR, 2: TENSOR},
    FUNCTION: {7: NODE, 11: ATTRIBUTE},  # nodes, and attribute defaults (attribute_proto)
    TRAINING: {1: GRAPH, 2: GRAPH},
    TENSOR: {},
}
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 13, 14
MAX_NESTING = 64  # subgraphs inside subgraphs: real models nest a few levels


# onnxruntime resolves external data against this folder instead of the working one.
SESSION_CONFIG = {"session.model_external_initializers_file_folder_path": os.devnull}


class UnsafeModel(TraderMLError):
    """The ONNX file refers to data outside itself."""


class MalformedModel(UnsafeModel):
    """The bytes are not a protobuf message at all."""


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise MalformedModel("truncated or malformed protobuf")
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview):
    """(field number, wire type, value) of one message: the varint, or the bytes of a
    length-delimited field; None for fixed-width fields."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        value: int | memoryview | None = None
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        else:
            raise MalformedModel(f"protobuf wire type {wire}, which ONNX never uses")
        if i > len(buf):
            raise MalformedModel("truncated or malformed protobuf")
        yield field, wire, value


def check_self_contained(data: bytes) -> None:
    """UnsafeModel unless every tensor of the ONNX model ``data`` keeps its values inside it."""
    stack = [(memoryview(data), MODEL, 0)]
    while stack:
        buf, kind, depth = stack.pop()
        if depth > MAX_NESTING:
            raise UnsafeModel(f"graphs nest over {MAX_NESTING} levels deep")
        children = CHILDREN[kind]
        for field, wire, value in _fields(buf):
            if kind == TENSOR and (
                field == TENSOR_EXTERNAL_DATA or (field == TENSOR_DATA_LOCATION and wire == 0 and value != 0)
            ):
                raise UnsafeModel("a tensor keeps its values in an external file; artifacts must be self-contained")
            if field in children and wire == 2:
                stack.append((value, children[field], depth + 1))
