"""Synaptic operations against the ANN's MACs, from :func:`neurocompile.analysis.estimate.estimate` on an evaluation's
first samples (rank 0 alone estimates under torchrun and tells the others)."""
from __future__ import annotations

from typing import Any

import numpy as np

from neurocompile.errors import NeurocompileError
from neurocompile.ir import Graph
from neurocompile.analysis.evaluate.result import Evaluation


def _estimate_synops(snn: Graph, x: np.ndarray, T: int) -> dict[str, Any]:
    """neurocompile.analysis.estimate on ``x``: per layer (synops, ANN MACs, ANN adds), the totals and the note; or the
    reason it could not (picklable: rank 0 sends it to the other ranks)."""
    from neurocompile.analysis.estimate import estimate

    try:
        est = estimate(snn, "loihi2", x=x.astype(np.float64), steps=T)
    except NeurocompileError as err:
        return {"error": str(err)}
    t = est.totals
    return {"layers": {r.name: (r.synops, r.ann_macs, r.ann_adds) for r in est.rows},
            "synops": {"synops": t.synops, "ann_macs": t.ann_macs, "ann_adds": t.ann_adds, "samples": t.samples,
                       "steps": t.steps, "spikes": t.spikes, "energy_pj": t.energy_pj,
                       "ann_energy_pj": t.ann_energy_pj,
                       "rows": [{"name": r.name, "op": r.op, "kind": r.kind, "synops": r.synops,
                                 "ann_macs": r.ann_macs, "ann_adds": r.ann_adds} for r in est.rows]}}


def _apply_synops(ev: Evaluation, est: dict[str, Any]) -> None:
    """An estimate's figures into ``ev``, per layer and in total (or a note saying why there are none)."""
    if "error" in est:
        ev.notes.append(f"synaptic operations not estimated: {est['error']}")
        return
    for ly in ev.layers:
        r = est["layers"].get(ly.name)
        if r is not None:
            ly.synops, ly.ann_macs, ly.ann_adds = r
    ev.synops = est["synops"]
    ev.notes.append(f"synaptic operations from neurocompile.analysis.estimate on the first {ev.synops['samples']} sample(s) "
                    "(float64 simulation)")


def _add_synops(ev: Evaluation, snn: Graph, first_x: list[np.ndarray], T: int, comm) -> None:
    """The synaptic operations on the first samples ``first_x`` into ``ev``. Under torchrun (``comm``) rank 0
    alone estimates (it runs its own simulation) and tells every rank, its failure included."""
    if comm is None:
        if first_x:
            _apply_synops(ev, _estimate_synops(snn, np.concatenate(first_x), T))
        return
    est = None
    if comm.rank == 0:
        try:
            est = _estimate_synops(snn, first_x[0], T) if first_x else None
        except Exception as exc:
            comm.broadcast(("failed", f"{type(exc).__name__}: {exc}"))
            raise
    est = comm.broadcast(est)
    if isinstance(est, tuple):
        raise NeurocompileError(f"on rank 0 of {comm.world}, estimating synaptic operations: {est[1]}")
    if est is not None:
        _apply_synops(ev, est)
