"""The placement as text (per core, per chip, totals against the estimate's bound; traffic, time and energy with
what each number is) and as figures (cores coloured by layer on each chip's grid; per-core utilisation)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurocompile.analysis.estimate.placement import Placement, pooled_bound
from neurocompile.analysis.estimate.result import Estimate, _format, _n
from neurocompile.analysis.estimate.runtime import Runtime, Traffic
from neurocompile.ir import Graph
from neurocompile.targets.loihi2.spec import LOIHI2_MESH, LOIHI2_TIMING

PLOTS = ("placement", "utilisation")  # file stems


def summary(p: Placement, est: Estimate) -> dict[str, Any]:
    """Cores and chips placed against the estimate's bounds; per chip the cores used."""
    per_chip: dict[int, set[int]] = {}
    for s in p.cores:
        per_chip.setdefault(s.chip, set()).add(s.core)
    return {"cores": p.n_cores, "chips": p.n_chips, "estimate_cores": est.totals.cores,
            "estimate_chips": est.totals.chips, "pooled_bound_cores": pooled_bound(est),
            "packing_efficiency": est.totals.cores / p.n_cores,
            "pooled_efficiency": pooled_bound(est) / p.n_cores,
            "cores_per_chip_used": {str(c): len(v) for c, v in sorted(per_chip.items())}}


def table(p: Placement, est: Estimate, tr: Traffic | None = None, rt: Runtime | None = None) -> str:
    """One line per (core, layer), per chip the cores used, totals against the bounds; traffic, time, energy."""
    head = ["chip", "core", "mesh", "layer", "neurons", "syn KiB", "axons"]
    rows = []
    for s in p.cores:
        _, r, c = p.position(s.index)
        rows.append([str(s.chip), str(s.core), f"{r},{c}", s.layer, f"[{s.start:,}, {s.stop:,})",
                     _n(s.synaptic_bits / 8192), _n(s.input_axons)])
    u = summary(p, est)
    out = [_placement_table(rows, head),
           f"(neurons: range of the layer's compartments, sink first then relays; mesh: row,column of an assumed "
           f"{LOIHI2_MESH.columns.value:g}-column grid, row-major)", "",
           "per chip: " + ", ".join(f"chip {c}: {n} cores" for c, n in u["cores_per_chip_used"].items()),
           f"placement: {u['cores']:,} cores on {u['chips']:,} chip(s), checked (every compartment once, every "
           f"synapse's memory on its target's core, every core within every limit); the estimate's cores (per layer, "
           f"not packed) {u['estimate_cores']:,} -> packing efficiency {u['packing_efficiency']:.2f} (estimate / "
           f"placed); bound with everything pooled {u['pooled_bound_cores']:,} cores -> {u['pooled_efficiency']:.2f}"]
    if tr is not None:
        out.append(f"traffic per inference ({tr.samples} sample(s), T={tr.steps}; measurement, placed): "
                   f"{tr.intra_core:,.0f} messages within cores, {tr.inter_core:,.0f} between cores "
                   f"({tr.hops:,.0f} hops, longest {tr.max_hops}), {tr.inter_chip:,.0f} between chips, "
                   f"{tr.host:,.0f} from the host; synops {tr.synops:,.0f}")
        if tr.partial_sums:
            out.append(f"fan-in split: {tr.partial_sums:,} partial-sum compartments send {tr.partial_messages:,.0f} "
                       f"messages (a bound), read by {tr.combine_synops:,.0f} of those synops; {tr.split_steps} "
                       "step(s) more on the longest path (ASSUMPTION: a Loihi 2 neuron passes its current on as a "
                       "graded spike, one synaptic delay)")
    if rt is not None:
        out.append(f"time per step (ESTIMATE, roofline): {rt.step_ns:,.0f} ns = slowest core {rt.slowest_core} "
                   f"{rt.compute_ns:,.0f} + mesh {rt.mesh_ns:,.0f} + barrier {rt.barrier_ns:,.0f} ns; latency "
                   f"(ESTIMATE) {_steps(rt)} x step = {rt.latency_ns / 1e3:,.2f} us; pipelined stream (ESTIMATE) "
                   f"one sample every {rt.period_steps} steps = {rt.throughput_per_s:,.0f} inferences/s")
        out.append(f"energy per inference (ESTIMATE): {rt.energy_pj / 1e3:,.1f} nJ = synops "
                   f"{rt.energy_synops_pj / 1e3:,.1f} + neuron updates {rt.energy_neurons_pj / 1e3:,.1f} + traffic "
                   f"{rt.energy_traffic_pj / 1e3:,.1f} nJ")
        out.append("time and mesh figures:")
        for figs in (LOIHI2_TIMING, LOIHI2_MESH):
            out += [f"  {k} = {f.value:g} {f.unit}: {f.source}" for k, f in figs.figures().items()]
    return "\n".join(out)


@dataclass
class Case:
    """One schedule of a network, placed and run: what a side-by-side column shows."""

    label: str
    t_wake: int
    gamma: int
    placement: Placement
    est: Estimate
    traffic: Traffic
    runtime: Runtime

    def to_dict(self) -> dict[str, Any]:
        rt, u = self.runtime, summary(self.placement, self.est)
        return {"t_wake": self.t_wake, "gamma": self.gamma, "steps": rt.steps, "split_steps": rt.split_steps,
                "cores": u["cores"], "chips": u["chips"], "packing_efficiency": u["packing_efficiency"],
                "step_ns": rt.step_ns, "latency_ns": rt.latency_ns, "period_steps": rt.period_steps,
                "throughput_per_s": rt.throughput_per_s, "energy_pj": rt.energy_pj,
                "energy_synops_pj": rt.energy_synops_pj, "energy_neurons_pj": rt.energy_neurons_pj,
                "energy_traffic_pj": rt.energy_traffic_pj, "inter_chip_messages": self.traffic.inter_chip}


def place_and_run(label: str, graph: Graph, x: np.ndarray, est: Estimate | None = None,
                  hw: str = "loihi2") -> Case:
    """``graph`` (converted) estimated with inputs ``x`` (unless ``est`` is given), placed, its traffic measured
    and its runtime estimated: one column of :func:`side_by_side`."""
    from neurocompile.analysis.estimate.estimator import estimate
    from neurocompile.analysis.estimate.placement import place
    from neurocompile.analysis.estimate.runtime import runtime, traffic
    from neurocompile.ir.ops import is_level_neuron, op_of

    est = est if est is not None else estimate(graph, hw, x=x)
    p = place(graph, est)
    tr = traffic(graph, p, est)
    gamma = max([op_of(n).spikes_per_step(n) for n in graph.nodes.values() if is_level_neuron(n)] or [1])
    return Case(label, graph.schedule.t_wake, gamma, p, est, tr, runtime(est, tr))


def side_by_side(cases: list[Case]) -> str:
    """The schedules' cores, chips, packing efficiency, time per step, latency, throughput and energy in columns,
    each row saying what kind of number it is."""
    d = [c.to_dict() for c in cases]
    rows = [("schedule", "", [f"T_wake={v['t_wake']}, gamma={v['gamma']}" for v in d]),
            ("steps per inference", "exact: the schedule (+ fan-in splits)",
             [f"{v['steps']}" + (f" ({v['steps'] - v['split_steps']} + {v['split_steps']})" if v["split_steps"]
                                 else "") for v in d]),
            ("cores / chips", "this placement, checked", [f"{v['cores']:,} / {v['chips']:,}" for v in d]),
            ("packing efficiency", "estimate's cores / placed", [f"{v['packing_efficiency']:.3f}" for v in d]),
            ("time per step", "ESTIMATE: roofline", [f"{v['step_ns'] / 1e3:,.2f} us" for v in d]),
            ("latency per inference", "ESTIMATE: steps x step", [f"{v['latency_ns'] / 1e3:,.1f} us" for v in d]),
            ("pipelined throughput", "ESTIMATE: one sample per period",
             [f"{v['throughput_per_s']:,.0f}/s (period {v['period_steps']})" for v in d]),
            ("energy per inference", "ESTIMATE: Loihi 1 per-op", [f"{v['energy_pj'] / 1e3:,.1f} nJ" for v in d]),
            ("  synops / neurons / traffic", "ESTIMATE", [f"{v['energy_synops_pj'] / 1e3:,.1f} / "
                                                         f"{v['energy_neurons_pj'] / 1e3:,.1f} / "
                                                         f"{v['energy_traffic_pj'] / 1e3:,.1f} nJ" for v in d]),
            ("messages between chips", "measurement, placed", [f"{v['inter_chip_messages']:,.0f}" for v in d])]
    head = ["", *[c.label for c in cases], "what it is"]
    body = [[name, *vals, kind] for name, kind, vals in rows]
    w = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in [head, *body])


def _steps(rt: Runtime) -> str:
    T = rt.steps - rt.split_steps
    return f"(T={T} + {rt.split_steps} for the fan-in splits)" if rt.split_steps else f"T={T}"


def _placement_table(rows: list[list[str]], head: list[str]) -> str:
    text = _format(rows, head, [""] * len(head)).split("\n")
    return "\n".join(text[:-2])  # no totals line: the totals follow in words


def plot_paths(folder: str) -> list[str]:
    """The files ``write_plots`` writes in ``folder`` (the CLI checks them before any work)."""
    return [os.path.join(folder, f"{k}.png") for k in PLOTS]


def write_plots(p: Placement, folder: str) -> list[str]:
    """``placement.png`` and ``utilisation.png`` in ``folder`` (created if missing), one atomic group; returns the
    paths."""
    from neurocompile.atomic import check_folder, write_atomic

    real = check_folder(folder)  # refused before drawing: a folder under a file or in /proc
    data = dict(zip(plot_paths(folder), (_grid(p), _util(p))))
    os.makedirs(real, exist_ok=True)
    write_atomic({path: (lambda fh, b=b: fh.write(b)) for path, b in data.items()})
    return list(data)


def _grid(p: Placement) -> bytes:
    """Each chip's grid, every used core coloured by its (first) layer."""
    from neurocompile.analysis.report import _figure, _png  # one figure rule for every plot of the package

    cols = p.mesh_columns
    rows = -(-p.limits["cores_per_chip"] // cols)
    names = list(p.layers)
    across = min(p.n_chips, 6)  # chips in a grid, six to a row
    down = -(-p.n_chips // across)
    fig = _figure(1.5 + 3 * across, 0.8 + 1.8 * down)
    cmap = __import__("matplotlib").colormaps["tab20"]
    for chip in range(p.n_chips):
        ax = fig.add_subplot(down, across, chip + 1)
        img = np.full((rows, cols), np.nan)
        for i, slots in p.per_core().items():
            c, r, q = p.position(i)
            if c == chip:
                img[r, q] = names.index(slots[0].layer) % 20
                if len(slots) > 1:
                    ax.text(q, r, str(len(slots)), ha="center", va="center", fontsize=6)
        ax.imshow(img, cmap=cmap, vmin=0, vmax=19)
        ax.set_title(f"chip {chip}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{p.n_cores} cores coloured by layer (a number: layers sharing the core)", fontsize=9)
    return _png(fig)


def _util(p: Placement) -> bytes:
    """Per core: neurons, synaptic memory and input axons as fractions of their limits."""
    from neurocompile.analysis.report import _figure, _png

    cores = p.per_core()
    idx = sorted(cores)
    lim = p.limits
    use = {"neurons": [sum(s.stop - s.start for s in cores[i]) / lim["neurons_per_core"] for i in idx],
           "synaptic memory": [sum(s.synaptic_bits for s in cores[i]) / lim["synaptic_bits_per_core"] for i in idx],
           "input axons": [sum(s.input_axons for s in cores[i]) / lim["input_axons_per_core"] for i in idx]}
    fig = _figure(max(6, len(idx) * 0.08 + 4), 3.5)
    ax = fig.add_subplot(1, 1, 1)
    for k, v in use.items():
        ax.plot(idx, 100 * np.asarray(v), ".-", ms=3, lw=0.8, label=k)
    ax.set_xlabel("core (global number)")
    ax.set_ylabel("% of the per-core limit")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
