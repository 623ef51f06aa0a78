"""ONNX export of the v2 ensemble graph: the v1 recipe (eval mode, constant folding, opset 17, batch axis dynamic on
every input and output) with the v2 contract's output names."""
from __future__ import annotations

import onnx
import torch

from frcds.model.export import OPSET

from .net import Graph2

INPUTS = ("image", "clinical")
OUTPUTS = ("base_log_hazard", "tscore", "cam", "ood_distance")


def export_onnx(graph: Graph2, path: str, size: int = 128) -> None:
    graph.eval()
    x = torch.zeros(2, 1, size, size)
    c = torch.zeros(2, 2)
    torch.onnx.export(graph, (x, c), path, opset_version=OPSET, do_constant_folding=True,
                      input_names=list(INPUTS), output_names=list(OUTPUTS),
                      dynamic_axes={n: {0: "batch"} for n in INPUTS + OUTPUTS})
    onnx.checker.check_model(onnx.load(path))
