"""Static check that TensorRT's ONNX parser can take a graph: every op, and the Q/DQ restrictions.

Run on every ONNX export, so an op TensorRT cannot parse is found here, not on the Jetson. The
operator list is data (``export.trt_ops``, from onnx-tensorrt's docs/operators.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export.trt_ops import OPSET_RANGE, SOURCE, SUPPORTED, ZERO_POINT_MUST_BE_ZERO

DEFAULT_DOMAINS = ("", "ai.onnx")


class UnsupportedOps(RuntimeError):
    """The graph holds ops (or op uses) the TensorRT ONNX parser rejects."""


def _load(model):
    import onnx

    return onnx.load(str(model)) if isinstance(model, (str, Path)) else model


def _graphs(graph):
    """The graph and every subgraph (If/Loop/Scan bodies), depth first."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def unsupported_ops(model) -> list[str]:
    """Sorted, distinct problems: ``"OpName"`` for an op outside the list (``"domain::Op"`` for a
    custom domain), ``"QuantizeLinear (zero_point != 0)"`` for asymmetric Q/DQ.

    Args:
        model: an ``onnx.ModelProto`` or a path to a .onnx file.
    """
    from onnx import numpy_helper

    m = _load(model)
    problems: set[str] = set()
    for graph in _graphs(m.graph):
        consts = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.domain not in DEFAULT_DOMAINS:
                problems.add(f"{node.domain}::{node.op_type}")
                continue
            if node.op_type not in SUPPORTED:
                problems.add(node.op_type)
                continue
            if node.op_type in ZERO_POINT_MUST_BE_ZERO and len(node.input) > 2 and node.input[2]:
                zp = consts.get(node.input[2])
                if zp is not None and np.any(numpy_helper.to_array(zp) != 0):
                    problems.add(f"{node.op_type} (zero_point != 0)")
    return sorted(problems)


def opset_problem(model) -> str | None:
    """A line when the default-domain opset is outside what the parser documents, else None."""
    m = _load(model)
    for imp in m.opset_import:
        if imp.domain in DEFAULT_DOMAINS and not OPSET_RANGE[0] <= imp.version <= OPSET_RANGE[1]:
            return f"opset {imp.version} is outside {OPSET_RANGE[0]}..{OPSET_RANGE[1]} ({SOURCE})"
    return None


def check_tensorrt_support(path: str | Path) -> None:
    """Raise UnsupportedOps (one line naming the ops, the file and the list's source) when the
    graph at ``path`` would not parse in TensorRT."""
    bad = unsupported_ops(path)
    if bad:
        raise UnsupportedOps(f"{path}: ops the TensorRT ONNX parser does not support: {', '.join(bad)} "
                             f"(list: {SOURCE}); change the model or pass --allow-trt-unsupported")
