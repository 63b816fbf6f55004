"""PyTorch -> ONNX with a dynamic batch, optional onnxsim, and the model card in metadata_props."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from runtime.card import ModelCard
from runtime.errors import MissingDependency


def to_onnx(module, sample, out: str | Path, simplify: bool = True, opset: int = 17,
            output_names: Sequence[str] = ("au",)) -> Path:
    """Export an eval-mode module (one NCHW input ``image`` -> ``au``, or with two outputs
    ``au`` and ``intensity``: ``output_names``) with a dynamic batch axis."""
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch"} for name in ("image", *output_names)}
    torch.onnx.export(module.eval(), (sample,), str(out), input_names=["image"], output_names=list(output_names),
                      dynamic_axes=axes, opset_version=opset, dynamo=False)
    if simplify:
        try:
            import onnx
            import onnxsim
        except ImportError:
            raise MissingDependency("onnxsim", "pip install 'au-edge[export]' (or pass simplify=False)") from None
        model, ok = onnxsim.simplify(onnx.load(str(out)))
        if ok:
            onnx.save(model, str(out))
    return out


def embed_card(onnx_path: str | Path, card: ModelCard) -> None:
    """Store the card (without sha256, which would change the file) in the ONNX metadata_props."""
    import onnx

    model = onnx.load(str(onnx_path))
    data = card.to_dict()
    data.pop("sha256", None)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {"au_edge.model_card": json.dumps(data)})
    onnx.save(model, str(onnx_path))
