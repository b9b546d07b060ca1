"""An evaluation under torch.distributed: each rank's shard of the data set, and the ranks' sums combined."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from neurocompile.errors import NeurocompileError
from neurocompile.analysis.evaluate.data import _as_array, _batches, _checked, _known_total, _labels
from neurocompile.analysis.evaluate.stats import _LayerStats, _StepStats


def _shard(x: Any, labels: Any, batch: int, rank: int, world: int, first_n: int
           ) -> tuple[Iterator[tuple[np.ndarray, np.ndarray | None]], int | None, list]:
    """This rank's batches, its sample count where known, and a list the batches fill, as they are drawn, with
    (global positions, samples) of the data set's first ``first_n`` samples this rank sees (the synops sample)."""
    firsts: list[tuple[np.ndarray, np.ndarray]] = []
    if isinstance(x, np.ndarray) or hasattr(x, "detach"):  # sample i on rank i % world, no padding
        arr = _as_array(x)
        lab = None if labels is None else _labels(labels)
        if arr.ndim == 0 or len(arr) == 0:
            raise NeurocompileError(f"the input holds no samples (shape {arr.shape})")
        if lab is not None and len(lab) != len(arr):
            raise NeurocompileError(f"{len(lab):,} labels for {len(arr):,} samples")
        if rank == 0 and first_n:
            firsts.append((np.arange(min(first_n, len(arr))), arr[:first_n]))
        mine = arr[rank::world]
        it = _batches(mine, None if lab is None else lab[rank::world], batch) if len(mine) else iter(())
        return it, len(mine), firsts
    sampler = _distributed_sampler(x)
    if sampler is None:
        return _round_robin(x, labels, batch, rank, world, first_n, firsts), _round_robin_total(x, rank, world), firsts
    if (int(sampler.num_replicas), int(sampler.rank)) != (world, rank):
        raise NeurocompileError(f"the DataLoader's DistributedSampler is rank {sampler.rank} of "
                                f"{sampler.num_replicas}, this process rank {rank} of {world}",
                                hint="Build it in the process group (its default num_replicas and rank)")
    if labels is not None:
        raise NeurocompileError("labels beside a DataLoader with a DistributedSampler cannot be matched with the "
                                "samples of its shard", hint="Give (x, y) batches, a dataset of (x, y) pairs")
    real = int(sampler.num_samples) if sampler.drop_last else len(range(rank, len(sampler.dataset), world))
    return _sampler_batches(x, batch, rank, world, real, first_n, firsts), real, firsts


def _distributed_sampler(x: Any):
    try:
        from torch.utils.data.distributed import DistributedSampler
    except ImportError:  # pragma: no cover
        return None
    for s in (getattr(x, "sampler", None), getattr(getattr(x, "batch_sampler", None), "sampler", None)):
        if isinstance(s, DistributedSampler):
            return s
    return None


def _sampler_batches(x: Any, batch: int, rank: int, world: int, real: int, first_n: int, firsts: list):
    """A DistributedSampler's shard without the padding: its k-th sample is position rank + k * world of the
    sampler's (padded) index list, and those at positions >= the data set's length are the duplicates."""
    seen = 0
    for xb, yb in _batches(x, None, batch):
        if seen >= real:
            break
        if seen + len(xb) > real:
            xb, yb = xb[:real - seen], None if yb is None else yb[:real - seen]
        pos = rank + world * np.arange(seen, seen + len(xb))
        sel = pos < first_n
        if sel.any():
            firsts.append((pos[sel], xb[sel]))
        seen += len(xb)
        yield xb, yb


def _round_robin(x: Any, labels: Any, batch: int, rank: int, world: int, first_n: int, firsts: list):
    """Any other iterable: every rank draws every batch (labels beside it stay in step), evaluates batch i if
    i % world == rank; rank 0 keeps the first samples."""
    done = 0
    for i, (xb, yb) in enumerate(_batches(x, labels, batch)):
        if rank == 0 and done < first_n:
            k = min(len(xb), first_n - done)
            firsts.append((np.arange(done, done + k), xb[:k]))
        done += len(xb)
        if i % world == rank:
            yield xb, yb


def _round_robin_total(x: Any, rank: int, world: int) -> int | None:
    n, b = _known_total(x), getattr(x, "batch_size", None)
    if n is None or not b:
        return None
    return sum(min(b, n - i * b) for i in range(rank, -(-n // b), world))


def _combine(comm, failure: Exception | None, stats: "_StepStats", base_stats: "_StepStats | None",
             layer_stats: dict[str, "_LayerStats"], labelled: bool | None, precision: str, T: int,
             firsts: list | None, shape: tuple[int, ...], dtype) -> tuple:
    """Every rank's sums into every rank's accumulators. A failure on any rank is raised on every rank (its own
    error where it failed, naming the rank elsewhere) before any reduction, so no rank waits for one that quit.
    Returns (labelled, precision, layer stats in order, the first samples on rank 0 / None)."""
    meta = {"failure": None if failure is None else
            str(failure) if isinstance(failure, NeurocompileError) else f"{type(failure).__name__}: {failure}",
            "labelled": labelled, "precision": precision or None,
            "layers": [(s.name, s.op, s.neurons, s.compared) for s in layer_stats.values()]}
    metas = comm.all_gather(meta)
    bad = [(r, m["failure"]) for r, m in enumerate(metas) if m["failure"] is not None]
    if failure is not None:
        raise failure
    if bad:
        raise NeurocompileError(f"on rank {bad[0][0]} of {comm.world}: {bad[0][1]}")
    flags = {m["labelled"] for m in metas if m["labelled"] is not None}
    if len(flags) > 1:
        raise NeurocompileError("some batches have labels and some do not")
    labelled = flags.pop() if flags else None
    precision = next((m["precision"] for m in metas if m["precision"]), precision)
    spec = next((m["layers"] for m in metas if m["layers"]), [])
    if any(m["layers"] and m["layers"] != spec for m in metas):  # pragma: no cover - one network on every rank
        raise NeurocompileError("the ranks recorded different layers")
    ordered = {}
    for lname, op, neurons, compared in spec:  # a rank without samples adds zeros
        ordered[lname] = layer_stats.get(lname) or _LayerStats(lname, op, neurons, T, compared)
    parts = [stats] + ([base_stats] if base_stats is not None else []) + list(ordered.values())
    sizes = [len(p.items()) for p in parts]
    reduced = comm.reduce([it for p in parts for it in p.items()])
    at = 0
    for p, k in zip(parts, sizes):
        p.load(reduced[at:at + k])
        at += k
    first_x = None
    if firsts is not None:
        got = comm.gather(firsts)
        if comm.rank == 0:
            chunks = [c for per_rank in got for c in per_rank]
            if chunks:
                pos = np.concatenate([c[0] for c in chunks])
                xs = np.concatenate([_as_array(c[1]) for c in chunks])
                _, idx = np.unique(pos, return_index=True)  # sorted by position
                first_x = _checked(xs[idx], shape, dtype)
    return labelled, precision, ordered, first_x
