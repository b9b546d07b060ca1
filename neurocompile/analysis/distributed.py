"""Several processes on one evaluation, with torch's own distributed engine (``torch.distributed``, gloo on CPU).

    torchrun --nproc-per-node 4 -m neurocompile evaluate model.onnx --input x.npy --labels y.npy --json ev.json

torchrun starts the processes and sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`session` joins them into a process group (only when ``WORLD_SIZE`` > 1; a group the caller
initialized already is used as it is; :func:`shutdown` ends the one made here) and :class:`Comm` reduces numpy
arrays over it. The reductions run on CPU tensors with the gloo backend whatever device simulates (``--device
cuda`` maps to ``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import os
import pickle
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from neurocompile.errors import NeurocompileError

REDUCE_OPS = ("sum", "max", "min", "or", "and")


def launched() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment: (0, 1) outside it (or where WORLD_SIZE is 1)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rank = int(os.environ.get("RANK", "0") or 0) if world > 1 else 0
    except ValueError:
        raise NeurocompileError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} / RANK={os.environ.get('RANK')!r} are "
                                "not integers", hint="Launch with torchrun, or unset them") from None
    if world > 1 and not 0 <= rank < world:
        raise NeurocompileError(f"RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    return rank, max(world, 1)


def local_device(device: str | None) -> str | None:
    """A bare ``cuda`` becomes this process's GPU, ``cuda:LOCAL_RANK`` (modulo the GPUs there are); anything else
    (``cpu``, ``cuda:N``, None) stays."""
    if device is None or str(device) != "cuda":
        return device
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return f"cuda:{local % n}" if n else device


@dataclass
class Comm:
    """This process's place in the group (``rank`` of ``world``) and the collectives evaluate needs.

    Every tensor handed to a collective stays referenced (``keep``, then the module's parking list) until the
    group is destroyed or the next evaluation: a gloo worker thread that drops the last reference to a tensor
    Python made takes the GIL to free it, while destroy_process_group holds the GIL and joins those threads, a
    deadlock (in ProcessGroupGloo::AsyncBarrierWork's destructor; about one torchrun in seven under load before).
    Objects travel pickled in uint8 tensors made here for the same reason (all_gather_object and friends make
    their own)."""

    rank: int
    world: int
    group: Any = None  # None: the default group
    keep: list = field(default_factory=list, repr=False)

    def _t(self, t):
        self.keep.append(t)
        return t

    def _sizes(self, n: int) -> list[int]:
        import torch
        import torch.distributed as dist

        sizes = [self._t(torch.zeros(1, dtype=torch.int64)) for _ in range(self.world)]
        dist.all_gather(sizes, self._t(torch.tensor([n], dtype=torch.int64)), group=self.group)
        return [int(v) for v in sizes]

    def _buffer(self, data: bytes, n: int):
        import torch

        buf = self._t(torch.zeros(max(n, 1), dtype=torch.uint8))
        if data:
            buf[:len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return buf

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        import torch
        import torch.distributed as dist

        data = pickle.dumps(obj)
        sizes = self._sizes(len(data))
        n = max(sizes)
        out = [self._t(torch.empty(max(n, 1), dtype=torch.uint8)) for _ in range(self.world)]
        dist.all_gather(out, self._buffer(data, n), group=self.group)
        return [pickle.loads(o[:k].numpy().tobytes()) for o, k in zip(out, sizes)]

    def gather(self, obj: Any, dst: int = 0) -> list[Any] | None:
        """Every rank's ``obj`` on rank ``dst`` (None elsewhere)."""
        import torch
        import torch.distributed as dist

        data = pickle.dumps(obj)
        sizes = self._sizes(len(data))
        n = max(sizes)
        out = [self._t(torch.empty(max(n, 1), dtype=torch.uint8)) for _ in range(self.world)] \
            if self.rank == dst else None
        dist.gather(self._buffer(data, n), out, dst=dst, group=self.group)
        return None if out is None else [pickle.loads(o[:k].numpy().tobytes()) for o, k in zip(out, sizes)]

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank."""
        import torch
        import torch.distributed as dist

        data = pickle.dumps(obj) if self.rank == src else b""
        size = self._t(torch.tensor([len(data)], dtype=torch.int64))
        dist.broadcast(size, src=src, group=self.group)
        buf = self._buffer(data, int(size))
        dist.broadcast(buf, src=src, group=self.group)
        return obj if self.rank == src else pickle.loads(buf[:int(size)].numpy().tobytes())

    def reduce(self, items: Sequence[tuple[str, np.ndarray]]) -> list[np.ndarray]:
        """All-reduce numpy arrays: ``items`` are (op, array), op one of sum, max, min, or, and (or/and: boolean
        arrays). Returns the reduced arrays (same shapes and dtypes), the same on every rank. One collective per
        (op, dtype): the arrays are packed into one flat tensor. A float max/min keeps NaN as numpy's
        maximum/minimum do (it wins), whatever order the ranks come in."""
        import torch
        import torch.distributed as dist

        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN,
               "or": dist.ReduceOp.MAX, "and": dist.ReduceOp.MIN}
        arrays = []
        for op, a in items:
            if op not in ops:
                raise ValueError(f"unknown reduction {op!r} (choose from {', '.join(REDUCE_OPS)})")
            a = np.asarray(a)
            if op in ("or", "and"):
                a = a.astype(bool)
            arrays.append(a)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, ((op, _), a) in enumerate(zip(items, arrays)):
            groups.setdefault((op, a.dtype.str), []).append(i)
        out: list[np.ndarray | None] = [None] * len(arrays)
        for (op, _), idx in groups.items():
            flat = np.concatenate([arrays[i].ravel() for i in idx])
            kind = flat.dtype
            nan = None
            if kind == bool:
                flat = flat.astype(np.uint8)
            elif kind.kind == "f" and op in ("max", "min"):
                nan = np.isnan(flat)
                flat = np.where(nan, -np.inf if op == "max" else np.inf, flat)
            t = self._t(torch.from_numpy(np.ascontiguousarray(flat)))
            if nan is None:
                dist.all_reduce(t, op=ops[op], group=self.group)
                res = t.numpy()
            else:
                flags = self._t(torch.from_numpy(nan.astype(np.uint8)))
                dist.all_reduce(t, op=ops[op], group=self.group)
                dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.group)
                res = np.where(flags.numpy().astype(bool), np.nan, t.numpy())
            res = res.astype(kind, copy=False)
            at = 0
            for i in idx:
                n = arrays[i].size
                out[i] = res[at:at + n].reshape(arrays[i].shape)
                at += n
        return out  # type: ignore[return-value]


@contextmanager
def session(mode: bool | None = None) -> Iterator[Comm | None]:
    """The process group for one evaluation, or None for a single process.

    ``mode`` None (auto): a group already initialized with more than one process, else torchrun's environment
    with WORLD_SIZE > 1: the group is then initialized here (gloo over ``env://``) and stays for the process's
    later evaluations, until :func:`shutdown` (or destroy_process_group, or the process's exit); otherwise None.
    False: None (each process on its own). True: as auto, but outside such a launch an error. A group whose
    backend is not gloo (NCCL) gets a gloo subgroup for the CPU reductions, for the evaluation.

    The group is not destroyed after each evaluation: under torchrun's c10d rendezvous rank 0's process hosts
    the store on MASTER_PORT, and a second init_process_group there right after a destroy fails now and then
    ("Connection reset by peer"). An evaluation ends, on success, with a barrier: every rank has finished every
    collective before any returns, so a process may exit or destroy the group right after."""
    if mode is False:
        yield None
        return
    if not join(mode):
        yield None
        return
    import torch.distributed as dist

    world = dist.get_world_size()
    if world < 2:
        if mode:
            raise NeurocompileError("distributed evaluation asked for, but the process group has one process")
        yield None
        return
    _PARKED.clear()  # the last evaluation's collectives are long done (Comm's docstring)
    group = None if "gloo" in str(dist.get_backend()) else dist.new_group(backend="gloo")
    comm = Comm(rank=dist.get_rank(), world=world, group=group)
    try:
        yield comm
    except BaseException:  # a peer may still wait in a collective: no barrier, nothing destroyed
        _PARKED.extend(comm.keep)
        raise
    dist.barrier(group=group)
    if group is not None:
        dist.destroy_process_group(group)
    _PARKED.extend(comm.keep)  # whoever destroys the group next: the tensors stay until then


def join(mode: bool | None = None) -> bool:
    """Initialize the default process group now if torchrun launched this process with WORLD_SIZE > 1 (gloo over
    ``env://``; it stays until :func:`shutdown`). True if a group is initialized afterwards, False for a single
    process (an error instead where ``mode`` is True, see :func:`session`). The CLI joins before its first check,
    so that an error found by every rank can be said by rank 0 before any rank exits (:func:`farewell`)."""
    import torch.distributed as dist

    if not dist.is_available():
        if mode:
            raise NeurocompileError("this torch build has no torch.distributed")
        return False
    if dist.is_initialized():
        return True
    rank, world = launched()
    if world < 2:
        if mode:
            raise NeurocompileError("distributed evaluation asked for outside a multi-process launch "
                                    "(WORLD_SIZE is not above 1)", hint="Launch with torchrun --nproc-per-node N")
        return False
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise NeurocompileError(f"WORLD_SIZE={world} but {' and '.join(missing)} not set, so the processes "
                                "cannot meet", hint="Launch with torchrun, which sets them")
    if not dist.is_gloo_available():
        raise NeurocompileError("this torch build has no gloo backend for torch.distributed")
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
    _OWNED.append(True)
    return True


def farewell(timeout_s: float = 60.0) -> None:
    """A barrier every rank passes on its way out after an error, rank 0 once it has said the error: torchrun
    stops every rank (SIGTERM) as soon as one exits non-zero, so a rank that left first could cut rank 0 short
    before it speaks. Bounded: a peer that never comes (gone already, or still in a collective) costs at most
    ``timeout_s``, then this returns all the same. Nothing where no group is initialized."""
    import datetime

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    try:
        dist.monitored_barrier(timeout=datetime.timedelta(seconds=timeout_s))
    except Exception:  # noqa: BLE001 - a peer gone or late: the error this rank leaves with stays the one said
        pass


def shutdown() -> None:
    """Destroy the process group :func:`session` initialized, if it did (a caller's own group is the caller's):
    after a barrier, so no rank destroys it while a peer still finishes a collective. The CLI calls it at the
    end of a successful evaluation."""
    import torch.distributed as dist

    if _OWNED and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        _PARKED.clear()
    _OWNED.clear()


_PARKED: list = []  # tensors of collectives in a group still alive (Comm's docstring)
_OWNED: list = []   # [True] while the default group is the one session() initialized


__all__ = ["Comm", "farewell", "join", "launched", "local_device", "session", "shutdown", "REDUCE_OPS"]
