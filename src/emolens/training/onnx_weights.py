"""Start training from an exported ONNX model: its weights put back into the torch network.

The shipped models exist only as ONNX files, whose export folded each BatchNorm into the
convolution before it. Fine-tuning such a model (for robustness, say) needs the torch
network back with working BatchNorm layers, so each folded convolution is given a BatchNorm
that reproduces it exactly and still trains normally: its running statistics and its affine
parameters are set from the convolution's output statistics on real faces, so that in eval
mode it adds the folded bias and nothing else, and in train mode (batch statistics close to
those) it starts from the same function.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from emolens.errors import ExportError


def load_onnx_weights(model: nn.Module, path: str | os.PathLike, faces: np.ndarray) -> None:
    """Copy the weights of an emolens ONNX model (float or int8) into ``model``, of the same architecture.

    Args:
        model: a freshly built network whose Conv2d layers are each followed by a BatchNorm2d.
        path: the ONNX file (an int8 one is read back as its float graph).
        faces: (n, 48, 48) uint8 faces to measure the convolutions' output statistics on.

    Raises:
        ExportError: when the file's layers do not match the network's.
    """
    import onnx
    from onnx import numpy_helper

    from emolens.training.quantize import float_graph

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises protobuf's untyped errors
        raise ExportError(f"{path}: not an ONNX model ({exc})") from exc
    graph = float_graph(proto).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def params(node: onnx.NodeProto) -> list[torch.Tensor]:
        return [torch.from_numpy(values[name].copy()) for name in node.input[1:] if name in values]

    convs = [params(n) for n in graph.node if n.op_type == "Conv"]
    gemms = [params(n) for n in graph.node if n.op_type == "Gemm"]
    norms = [params(n) for n in graph.node if n.op_type == "BatchNormalization"]
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.BatchNorm1d))]
    conv_layers = [m for m in layers if isinstance(m, nn.Conv2d)]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    norms_1d = [m for m in layers if isinstance(m, nn.BatchNorm1d)]
    if (len(convs), len(gemms), len(norms)) != (len(conv_layers), len(linears), len(norms_1d)):
        raise ExportError(
            f"{path}: {len(convs)} convolutions, {len(gemms)} linear and {len(norms)} batch-norm layers, but the"
            f" network has {len(conv_layers)}, {len(linears)} and {len(norms_1d)}: not the same architecture"
        )
    folded_bias: dict[nn.Conv2d, torch.Tensor] = {}
    with torch.no_grad():
        for conv, (conv_weight, *conv_bias) in zip(conv_layers, convs):
            if conv.weight.shape != conv_weight.shape:
                raise ExportError(
                    f"{path}: a convolution of shape {tuple(conv_weight.shape)}, the network's is"
                    f" {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(conv_weight)
            folded_bias[conv] = conv_bias[0] if conv_bias else torch.zeros(conv_weight.shape[0])
        for linear, (weight, bias) in zip(linears, gemms):
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        for norm, (scale, shift, mean, var) in zip(norms_1d, norms):
            running_mean, running_var = _running_stats(norm)
            norm.weight.copy_(scale)
            norm.bias.copy_(shift)
            running_mean.copy_(mean)
            running_var.copy_(var)
    _rebuild_batchnorms(model, folded_bias, faces)


def _running_stats(norm: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``norm``'s running mean and variance, which torch leaves None when it was built with
    ``track_running_stats=False``."""
    if norm.running_mean is None or norm.running_var is None:
        raise ExportError(f"{norm} keeps no running statistics (track_running_stats=False); ONNX weights need them")
    return norm.running_mean, norm.running_var


def _rebuild_batchnorms(model: nn.Module, folded_bias: dict[nn.Conv2d, torch.Tensor], faces: np.ndarray) -> None:
    """Give each convolution's BatchNorm the convolution's output statistics, so it adds the folded bias only."""
    follows: dict[nn.BatchNorm2d, nn.Conv2d] = {}
    previous: nn.Module | None = None
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d):
            follows[module] = previous
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
            previous = module
    if set(follows.values()) != set(folded_bias):
        raise ExportError("every convolution of the network must be followed by a BatchNorm2d to take folded weights")
    for norm, conv in follows.items():  # identity plus the bias until measured
        norm.reset_parameters()
        norm.reset_running_stats()
        _, running_var = _running_stats(norm)
        running_var.fill_(1 - norm.eps)
        norm.bias.data.copy_(folded_bias[conv])
    x = torch.from_numpy(faces).unsqueeze(1).float()
    model.eval()
    for norm in follows:  # in order: each layer's input is exact once the ones before it are set
        captured: list[torch.Tensor] = []
        hook = norm.register_forward_pre_hook(lambda _m, args, store=captured: store.append(args[0].detach()))
        with torch.no_grad():
            model(x)
        hook.remove()
        out = captured[0]
        mean, var = out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False)
        with torch.no_grad():
            running_mean, running_var = _running_stats(norm)
            running_mean.copy_(mean)
            running_var.copy_(var)
            norm.weight.copy_(torch.sqrt(var + norm.eps))
            norm.bias.copy_(mean + norm.bias)
