"""ONNX export of the whole ensemble as one graph (issue 3, item 3), following platform-notes: eval mode, constant
folding, opset <= 17, every input and output named in ``dynamic_axes`` (batch dimension)."""
from __future__ import annotations

import hashlib

import onnx
import torch

OPSET = 17
INPUTS = ("image", "clinical")
OUTPUTS = ("log_hazard", "cam", "ood_distance")


def export_onnx(graph: torch.nn.Module, path: str, size: int = 128, outputs: tuple[str, ...] = OUTPUTS) -> None:
    """``outputs``: names of the graph's outputs in order (v1's by default; hip-xray-v2 passes its own)."""
    graph.eval()
    x = torch.zeros(2, 1, size, size)
    c = torch.zeros(2, 2)
    torch.onnx.export(graph, (x, c), path, opset_version=OPSET, do_constant_folding=True,
                      input_names=list(INPUTS), output_names=list(outputs),
                      dynamic_axes={n: {0: "batch"} for n in INPUTS + tuple(outputs)})
    model = onnx.load(path)
    onnx.checker.check_model(model)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
