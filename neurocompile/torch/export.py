"""export_onnx: a PyTorch model of the kit -> an ONNX file neurocompile imports.

The kit writes ONNX and never touches the IR (architecture.md). CQReLU becomes a custom node
``neurocompile::CQReLU`` (default) or the standard-op chain Clip -> Mul -> Floor -> Div that any ONNX
runtime executes. LIF / IF / CIF become custom nodes applied to one time step: a spiking model's
graph is one step's dataflow on (N, ...) tensors, and the time loop belongs to the simulator, which
reads the number of steps and the input encoding from the model's metadata.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import onnx
import torch
from torch import nn

from neurocompile.torch._mode import export_mode
from neurocompile.frontends.onnx.contract import DOMAIN, DOMAIN_VERSION, ENCODINGS, META_ENCODING, META_TIME_STEPS
from neurocompile.torch.modules import CQReLU, has_spiking

OPSET = 17


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike, time_steps: int | None = None,
                encoding: str = "direct", cqrelu: str = "custom", fold_bn: bool = False,
                input_name: str = "input", output_name: str = "output") -> str:
    """Write ``model`` to ``path`` as ONNX (opset 17, dynamic batch axis) and return the path.

    ``example_input``: one time step's input, shape (N, ...) (for the kit's spiking ResNet, the image).
    ``cqrelu``: "custom" (one neurocompile::CQReLU node, attributes levels:int, clip:float) or
    "chain" (Clip(0, λ) -> Mul(L/λ) -> Floor -> Div(L/λ), see ``chain_clip_bound``).
    ``fold_bn``: False keeps every BatchNorm as a BatchNormalization node (inference form); True
    exports with constant folding, which folds BN into the preceding conv.
    Spiking models (any LIF/IF/CIF) need ``time_steps`` (or a ``model.time_steps`` attribute); it is
    stored with ``encoding`` in metadata_props as "neurocompile.time_steps" / "neurocompile.encoding".
    The model is exported in eval mode and its training flag is restored afterwards.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if cqrelu not in ("custom", "chain"):
        raise ValueError(f"cqrelu must be 'custom' or 'chain', got {cqrelu!r}")
    spiking = has_spiking(model)
    if time_steps is None and spiking:
        time_steps = getattr(model, "time_steps", None)
        if time_steps is None:
            raise ValueError("a spiking model needs time_steps (pass time_steps=T or give the model a "
                             "time_steps attribute): the exported graph is one step, T goes to the metadata")
    if time_steps is not None and int(time_steps) < 1:
        raise ValueError(f"time_steps must be >= 1, got {time_steps}")
    path = os.fspath(path)
    kwargs: dict[str, Any] = dict(
        opset_version=OPSET, input_names=[input_name], output_names=[output_name],
        dynamic_axes={input_name: {0: "N"}, output_name: {0: "N"}})
    if spiking or (cqrelu == "custom" and any(isinstance(m, CQReLU) for m in model.modules())):
        kwargs["custom_opsets"] = {DOMAIN: DOMAIN_VERSION}  # declared only when used: torch warns about an unused domain
    if fold_bn:
        kwargs.update(training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    else:  # PRESERVE on an eval-mode model: inference BN nodes, not fused into the conv
        kwargs.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    was_training = model.training
    model.eval()
    try:
        with export_mode(cqrelu), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*(ONNX|onnx).*", category=UserWarning)
            torch.onnx.export(model, (example_input,), path, **kwargs)
    finally:
        model.train(was_training)
    if time_steps is not None:
        proto = onnx.load(path)
        _set_meta(proto, {META_TIME_STEPS: str(int(time_steps)), META_ENCODING: encoding})
        onnx.save(proto, path)
    return path


def _set_meta(proto: onnx.ModelProto, values: dict[str, str]) -> None:
    """Set metadata_props entries, replacing existing ones with the same key."""
    keep = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in values.items():
        proto.metadata_props.add(key=k, value=v)
