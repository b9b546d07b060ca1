"""``neurocompile inspect``: a model's layers, shapes, parameters, neurons and synapses as neurocompile sees them."""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from neurocompile.cli import options
from neurocompile.cli.checks import _check_args
from neurocompile.cli.options import UsageError, _nir_options, _Parser
from neurocompile.errors import NeurocompileError


def _inspect_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="neurocompile inspect", description="Print a model's layers, shapes and "
                                "parameter counts as neurocompile sees them.")
    p.add_argument("model", help="ONNX file, NIR file (.nir), neurocompile artifact (.h5) or saved IR (.json)")
    from neurocompile.passes import PIPELINES

    p.add_argument("--passes", choices=sorted(PIPELINES), default="optimize",
                   help="show the graph after this pipeline (default: optimize = canonicalize + fold_batchnorm)")
    p.add_argument("--log-passes", action="store_true", help="also print what every pass changed")
    p.add_argument("--steps", type=int, help="NIR files: the number of input steps T (what --passes idsnn schedules)")
    _nir_options(p)
    return p


def _inspect(a: argparse.Namespace) -> int:
    """Print the model after the --passes pipeline: its source, layers, neurons and synapses (and the pass log)."""
    from neurocompile import api

    from neurocompile.frontends.nir import is_nir

    _check_args(a)
    if a.steps is not None and not is_nir(a.model):
        raise UsageError(f"--steps applies to NIR files here (their T); {a.model} is not one")
    log: list = []
    try:
        g = api.run_pipeline(options._load(a), a.passes, log)
    except NeurocompileError as err:
        raise err.at(a.model)
    nir = g.meta.get("nir")
    if nir:  # a NIR file: its version and how its ODEs became steps
        print(f"model: {a.model}  (NIR {nir.get('version', '?')}, dt={nir['dt']:g} s from {nir.get('dt_from', '?')}, "
              f"discretization {nir['discretization']})")
    else:
        print(f"model: {a.model}  (opset {g.meta.get('opset', '?')}, producer {g.meta.get('producer') or '?'})")
    print(g.summary())
    print(_neuron_synapse_counts(g))
    if a.log_passes:
        print("\n".join(str(r) for r in log))
    return 0


def _neuron_synapse_counts(g: Any) -> str:
    """One line: neurons (units of every activation or neuron layer, per sample) and synapses (connections of every
    weighted layer, each output unit times its fan-in: what a spiking network unrolls), beside the shared weights."""
    from math import prod

    from neurocompile.ir.ops import op_of

    neurons = layers = synapses = weights = 0
    for n in g.topo():
        op = op_of(n)
        units = prod(g.shapes[n.output])
        if op.spiking or op.quantizer or op.calibratable:
            neurons, layers = neurons + units, layers + 1
        elif op.synaptic and "weight" in n.params:
            w = np.asarray(n.params["weight"])
            out_channels = g.shapes[n.output][0] if g.shapes[n.output] else 1
            synapses += units * (w.size // max(out_channels, 1))
            weights += w.size
    return (f"neurons: {neurons:,} in {layers} layer(s) per sample; synapses: {synapses:,} connections "
            f"({weights:,} weights, shared where convolutions repeat them)")
