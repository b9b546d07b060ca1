"""Hand-built ONNX models for tests: valid for onnx.checker and loadable by onnxruntime."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

ORT_IR_VERSION = 8  # onnx 1.23 stamps IR 14 by default; onnxruntime 1.23 loads IR <= 11


def tensor(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def make_model(nodes: Sequence[onnx.NodeProto], inits: Sequence[onnx.TensorProto] = (), in_shape=(None, 4),
               out: str = "y", opset: int = 17, custom: bool = False, inp: str = "x") -> onnx.ModelProto:
    """One float input ``inp`` of ``in_shape``, one output ``out`` whose shape onnx infers."""
    x = helper.make_tensor_value_info(inp, TensorProto.FLOAT, list(in_shape))
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("neurocompile", 1)] if custom else [])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    g = helper.make_graph(list(nodes), "t", [x], [y], initializer=list(inits))
    m = helper.make_model(g, opset_imports=opsets, ir_version=ORT_IR_VERSION)
    try:  # give the output the shape onnx infers (graph outputs need one to be valid ONNX)
        inferred = onnx.shape_inference.infer_shapes(m)
        vi = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
        if out in vi and vi[out].type.tensor_type.HasField("shape"):  # its rank, dims left symbolic: onnx's
            m.graph.output[0].CopyFrom(vi[out])                           # ceil_mode pool sizes are wrong
            for i, d in enumerate(m.graph.output[0].type.tensor_type.shape.dim):
                d.dim_param = f"d{i}"
    except Exception:  # noqa: BLE001 - an invalid model stays invalid: that is what some tests want
        pass
    if not m.graph.output[0].type.tensor_type.HasField("shape"):
        m.graph.output[0].type.tensor_type.shape.SetInParent()
        m.graph.output[0].type.tensor_type.shape.dim.add()
    return m
