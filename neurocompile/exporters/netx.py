"""lava-dl netx export: a fixed-point LIF student as the HDF5 network description ``netx.hdf5.Network`` loads.

netx (lava-dl 0.6) holds a chain of layers, ``input`` (shape only), ``conv``, ``flatten``, ``dense``, each a
synapse and a CUBA neuron (iDecay -> du = iDecay - 1, vDecay -> dv, vThMant -> vth, bias mantissa with exponent
6), connected strictly one after the other. neurocompile's fixed-point student maps onto it exactly: du = 4095
(iDecay 4096: the current is this step's input), dv, integer vth, a bias b_int entering as b_int << 6 (what
neurocompile sends into a_in each step), one step of delay per synapse. Load it with a reset every T steps,
staggered by one step per layer as netx does, starting one step late (the first layer's data arrives one step
after the input):

    net = netx.hdf5.Network("student.net", reset_interval=T, reset_offset=1, input_message_bits=8)

Feed it ``round(x * 255)`` on each of a sample's T steps, in netx's layout: ``x.transpose(2, 1, 0)`` (W, H, C) when
the first layer is a conv, ``x.reshape(-1)`` (C order) when it is dense. The last layer (the readout) is a dense layer whose
neuron integrates without leak and never fires (vDecay 0, vThMant max): at the last step of sample k's window
its ``v`` is 64 times neurocompile's readout sum (readout = v / 64 / (T * readout_scale)). What netx cannot
hold (residual merges, pooling, CIF/IF neurons, weight exponents) is refused naming the layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import Group, op_of, pair
from neurocompile.passes.lower_to_blocks import lowered
from neurocompile.passes.quantize_fixed_point import FIXED_POINT_LIF
from neurocompile.targets.loihi2.spec import (BIAS_MANT_MAX, DECAY_UNITY, LAVA_CONV_GROUPS_MAX, LIF_SHIFT, LIF_VTH_MAX,
                                              STATE_MAX, WEIGHT_BITS)

_REFUSE_HINT = "Export neurocompile's own artifact instead: neurocompile export MODEL -o net.h5"


@dataclass
class NetxLayer:
    """One netx layer: its ``type`` and datasets (``neuron`` a dict of CUBA parameters, or None)."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    neuron: dict[str, Any] | None = None
    source: str = ""  # the IR node it comes from


def netx_layers(graph: Graph) -> list[NetxLayer]:
    """The netx layers of a fixed-point LIF student (lowered), or the ConversionError naming what netx cannot hold."""
    g = lowered(graph)
    if not g.meta.get("fixed_point"):
        raise ConversionError("netx holds fixed-point networks: convert with fixed_point=True (CLI: --fixed-point)")
    s = g.schedule
    (inp,) = g.input_nodes
    layers = [NetxLayer("input", {"shape": np.asarray(g.shapes[inp.output], np.int64)}, source=inp.name)]
    prod, cons = g.producers(), g.consumers()
    t = inp.output
    while True:
        users = cons.get(t, [])
        if not users:
            break
        if len(users) > 1:
            raise ConversionError("a layer feeds several others (a residual fork): netx holds a chain of layers only",
                                  node=users[1].name, op=users[1].op, hint=_REFUSE_HINT)
        n = users[0]
        op = op_of(n)
        if _moves_values(n) and len(g.shapes[n.output]) == 1:
            layers.append(NetxLayer("flatten", source=n.name))
            t = n.output
            continue
        if not (op.synaptic and "weight" in op.params):  # Conv, Dense: a connection with a weight tensor
            raise ConversionError(f"netx has no layer for {n.op}", node=n.name, op=n.op, hint=_REFUSE_HINT)
        if int(op.attr(n, "weight_exp") or 0):
            raise ConversionError("netx's conv and dense layers take 8-bit weights without an exponent",
                                  node=n.name, op=n.op, hint=_REFUSE_HINT)
        sink = _single_user(cons, n)
        layer = _synapse(g, n)
        layer.neuron, bias = _neuron(g, sink)
        if bias is not None:
            layer.data["bias"] = bias
        layers.append(layer)
        if sink.op in Group.READOUT:
            break
        t = sink.output
    if prod[g.outputs[0]].op not in Group.READOUT or layers[-1].source != prod[prod[g.outputs[0]].inputs[0]].name:
        raise ConversionError("the network does not end in one readout layer netx can hold", hint=_REFUSE_HINT)
    if any(s.balance.values()):
        raise ConversionError("the schedule balances branches: netx holds a chain of layers only", hint=_REFUSE_HINT)
    return layers


def _moves_values(n: Node) -> bool:
    """A node netx holds as its ``flatten`` layer: one that moves values without changing or delaying them (Flatten,
    Reshape; canonicalize has removed Identity and Dropout)."""
    op = op_of(n)
    return op.exact_in_integers and not (op.merge or op.stateful or op.output_delay(n))


def _single_user(cons: dict, n: Node) -> Node:
    users = cons.get(n.output, [])
    if len(users) != 1 or not op_of(users[0]).sink:  # a sink that is no LIF is refused by _neuron
        bad = users[0] if users else n
        raise ConversionError("netx layers are a synapse followed by a CUBA (LIF) neuron; this one feeds "
                              f"{', '.join(u.op for u in users) or 'nothing'}", node=bad.name, op=bad.op,
                              hint=_REFUSE_HINT)
    return users[0]


def _synapse(g: Graph, n: Node) -> NetxLayer:
    op = op_of(n)
    w = np.asarray(n.params["weight"], np.float64)
    out_shape = np.asarray(g.shapes[n.output], np.int64)
    if op.weight_map(n, g.shapes[n.inputs[0]]).kind == "dense":
        _check_netx_dense(n, w)
        return NetxLayer("dense", {"shape": out_shape, "weight": w.astype(np.int64)}, source=n.name)
    if int(op.attr(n, "groups")) > LAVA_CONV_GROUPS_MAX:  # netx runs lava's own Conv model, which reads groups as int8
        raise ConversionError(f"{op.attr(n, 'groups')} groups: lava's Conv model that netx runs reads groups as an "
                              "8-bit integer", node=n.name, op=n.op, hint=_REFUSE_HINT)
    t, l, b, r = (int(v) for v in op.attr(n, "pads"))
    if (t, l) != (b, r):
        raise ConversionError(f"asymmetric pads {[t, l, b, r]} have no netx form", node=n.name, op=n.op,
                              hint=_REFUSE_HINT)
    return NetxLayer("conv", {"shape": out_shape, "weight": w.astype(np.int64),
                              "stride": np.asarray(pair(op.attr(n, "stride")), np.int64),
                              "padding": np.asarray([t, l], np.int64),
                              "dilation": np.asarray(pair(op.attr(n, "dilation")), np.int64),
                              "groups": np.int64(op.attr(n, "groups"))}, source=n.name)


def _check_netx_dense(n: Node, w: np.ndarray) -> None:
    """netx rescales dense weights (lava-dl's optimize_weight_bits) and lava's Dense clips and truncates them
    again: refuse a layer whose weights would not come back exactly as the shifted integers computed here."""
    import contextlib
    import io
    import warnings

    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # lava-dl's import (CUDA, datasets) and its divide by a zero maximum talk
        from lava.lib.dl.netx.utils import optimize_weight_bits

        opt, bits, exp, _ = optimize_weight_bits(w.astype(np.int64))
    mode = determine_sign_mode(opt)
    final = truncate_weights(clip_weights(opt, mode, num_bits=WEIGHT_BITS), mode, bits)
    shift = -int(exp)
    if shift < 0 or not np.array_equal(np.asarray(final, np.int64), w.astype(np.int64) << shift):
        raise ConversionError("netx would load this layer's 8-bit weights differently (lava-dl rescales them, lava's "
                              "Dense clips and truncates them)", node=n.name, op=n.op, hint=_REFUSE_HINT)


def _neuron(g: Graph, sink: Node) -> tuple[dict[str, Any], np.ndarray | None]:
    """(CUBA parameters, bias mantissas in netx's layout or None) of an LIF or readout sink."""
    op = op_of(sink)
    readout = sink.op in Group.READOUT
    if not readout and (sink.op not in FIXED_POINT_LIF or op.attr(sink, "dv") is None):
        raise ConversionError("netx's CUBA neuron holds LIF students in fixed point; CIF and IF neurons have no "
                              "netx form", node=sink.name, op=sink.op, hint=_REFUSE_HINT)
    bias = sink.params.get("bias")
    if bias is not None:
        bias = np.asarray(bias, np.float64)
        if np.abs(bias).max() > BIAS_MANT_MAX:
            raise ConversionError(f"bias mantissas up to {np.abs(bias).max():.0f} pass the 13-bit bias of netx's CUBA "
                                  f"neuron (|b| <= {BIAS_MANT_MAX})", node=sink.name, op=sink.op, hint=_REFUSE_HINT)
        if bias.ndim == 3 and bias.shape[1:] == (1, 1):
            bias = bias[:, 0, 0]  # per channel
        elif bias.ndim == 3:
            bias = np.transpose(bias, (2, 1, 0))  # per neuron, in netx's (W, H, C)
        bias = bias.astype(np.int64)
    if readout:  # integrate without leak, never fire: v = 64 * the readout sum
        return {"type": "CUBA", "iDecay": DECAY_UNITY, "vDecay": 0, "vThMant": LIF_VTH_MAX, "refDelay": 1,
                "gradedSpike": False}, bias
    return {"type": "CUBA", "iDecay": DECAY_UNITY, "vDecay": int(op.attr(sink, "dv")),
            "vThMant": int(op.attr(sink, "threshold")), "refDelay": 1, "gradedSpike": False}, bias


def check_readout_fits(graph: Graph) -> None:
    """The readout layer's membrane holds 64 times the readout sum below 2**23 (checked from the quantizer's report)."""
    g = lowered(graph)
    for r in g.meta.get("fixed_point_report", []):
        if r.get("op") in Group.READOUT and r.get("total_peak", 0) * 2 ** LIF_SHIFT >= STATE_MAX:
            raise ConversionError("the readout sum could pass the 24-bit membrane of netx's readout neuron",
                                  node=r["node"], op="Readout", hint=_REFUSE_HINT)


def write_netx(graph: Graph, path: str) -> list[NetxLayer]:
    """Write ``graph`` (a fixed-point LIF student) as a netx HDF5 file, atomically; returns its layers."""
    import io

    import h5py

    from neurocompile.atomic import write_atomic

    layers = netx_layers(graph)
    check_readout_fits(graph)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["generator"] = "neurocompile"
        f.attrs["steps"] = int(graph.schedule.steps)
        f.attrs["input_scale"] = float(graph.schedule.input_scale or 1.0)
        f.attrs["readout_scale"] = float(graph.schedule.readout_scale)
        root = f.create_group("layer")
        for i, layer in enumerate(layers):
            h = root.create_group(str(i))
            h.create_dataset("type", data=np.bytes_(layer.type))
            for k, v in layer.data.items():
                h.create_dataset(k, data=v)
            if layer.neuron is not None:
                nh = h.create_group("neuron")
                for k, v in layer.neuron.items():
                    nh.create_dataset(k, data=np.bytes_(v) if isinstance(v, str) else v)
    data = buf.getvalue()
    write_atomic({path: lambda fh: fh.write(data)})
    return layers
