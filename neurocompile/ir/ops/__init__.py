"""The op table: one small class per op kind with its parameters, attribute defaults and ANN meaning, one file per
op family, each class registered by ``@register`` into :data:`OPS` (op name -> its instance).

Every op's meaning is written once, in torch (``forward``), and used three ways:
- the interpreter runs it on real tensors (float32 or float64, CPU or CUDA);
- shape inference runs it on ``meta`` tensors (no data, no FLOPs), so there is no separate
  shape rule to drift from the semantics;
- the reference SNN simulator calls ``linear`` / ``bias`` of affine ops step by step.
Torch rather than numpy because the reference simulator must run on CUDA, and one definition
of a strided, padded, grouped convolution is better than two.

Files: ``rules.py`` (attribute rules, ``check_attrs``), ``base.py`` (``Role``, ``Op`` and its traits, weight maps,
tensor helpers), ``registry.py`` (``OPS``, ``register``, ``op_of``), the families ``linear.py``, ``merge.py``,
``activations.py``, ``neurons.py``, ``pooling.py``, ``structure.py``, and ``table.py`` (``Group``: named sets of op
names built from every registered op's traits; shape inference). Passes and targets ask ``node.op in Group.X`` or an
op's traits and methods, never a list of op names of their own.
"""
from neurocompile.ir.neurons import cqrelu
from neurocompile.ir.ops.activations import CQReLU, Clip, Floor, LeakyRelu, Relu, Round
from neurocompile.ir.ops.base import NoWeightMap, Op, Role, Tensor, WeightMap, channel, pad2d, pair, tensors
from neurocompile.ir.ops.linear import Affine, BatchNorm, Conv, Dense, Div, Gemm, MatMul, Mul
from neurocompile.ir.ops.merge import Add, Concat, Sub
from neurocompile.ir.ops.neurons import CIF, IF, LI, LIF, CubaLIF, LevelNeuron
from neurocompile.ir.ops.pooling import AvgPool, GlobalAvgPool, InhibitionMaxPool, MaxPool, Pool, StepMaxPool, pool_axis
from neurocompile.ir.ops.registry import OPS, op_of, register
from neurocompile.ir.ops.rules import (DECAY, FLAG, LEVELS, POSITIVE, SHIFT, WEIGHT_EXP, Int, Ints, Real, Rule,
                                       check_attrs)
from neurocompile.ir.ops.structure import Dropout, Flatten, Identity, Input, Readout, Reshape, StepDelay
from neurocompile.ir.ops.table import Group, infer_shape, is_level_neuron, refuse_no_spiking_form

__all__ = [
    "OPS", "Group", "Op", "Role", "register", "op_of", "is_level_neuron", "refuse_no_spiking_form", "infer_shape",
    "check_attrs", "Rule", "Int", "Ints", "Real", "FLAG", "DECAY", "POSITIVE", "LEVELS", "SHIFT", "WEIGHT_EXP",
    "NoWeightMap", "WeightMap", "Tensor", "channel", "pad2d", "pair", "tensors", "pool_axis", "cqrelu",
    "Input", "Conv", "Dense", "Gemm", "MatMul", "BatchNorm", "Affine", "Mul", "Div", "Add", "Sub", "Concat",
    "Relu", "Clip", "LeakyRelu", "Floor", "Round", "CQReLU", "LevelNeuron", "CIF", "IF", "LIF", "CubaLIF", "LI",
    "Pool", "AvgPool", "MaxPool", "InhibitionMaxPool", "StepMaxPool", "GlobalAvgPool",
    "Flatten", "Reshape", "Identity", "Dropout", "StepDelay", "Readout",
]
