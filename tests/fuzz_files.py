"""Mutation fuzzing of the CLI over its other inputs (issue 26): deployment artifacts, NIR files and evaluate's
inputs (used by tests/test_fuzz.py and benchmarks/fuzz_cli.py; tests/fuzz_mutants.py does the ONNX models).

A :class:`FileMutant` is a seed (a file neurocompile wrote or reads, and its arrays) changed in one structured way,
plus the command line that judges it. Every kind shares fuzz_mutants' oracle for refusals: exit 1 or 2 with one
paragraph on stderr, no traceback, no "internal error", no hang and none of the run's output files left behind.
What exit 0 must mean differs by kind:

- ``artifact`` (``neurocompile verify a.h5`` / ``neurocompile run a.h5 --input x.npy --json out.json``): exit 0 only
  if the file's payload (every attribute and dataset under ``graph``, ``provenance`` and ``reference``, and the root's
  attributes, as h5py reads them; :func:`payload`) is the seed's, byte for byte: artifacts carry a SHA-256 digest of
  their payload, checked on every load, so any change of it must be refused; an edit outside it (HDF5 free space,
  another root group, the same payload rewritten) may pass. ``run`` must then give the seed's outputs.
  ``verify`` may also answer exit 1 with "NOT verified" on stdout (its report), a clean outcome.
- ``nir`` (``neurocompile run x.nir --input x.npy --json out.json``): exit 0 gives finite outputs; for the LIF MLP
  seed these must equal :func:`lif_reference`, a float64 numpy loop of the NIR LIF equations as neurocompile
  discretizes them (frontends/nir/discretize.py's docstring), computed from the mutated file itself wherever it is still a
  valid LIF MLP; for the digits CNN's export, unmutated or changed without changing its meaning, onnxruntime's
  outputs of the ONNX model. Any other exit 0 is recorded as "accepted" (not a finding: for review), or
  "accepted_unchanged" where the CNN's file changed but its outputs are still the ONNX model's (an ignored field?),
  except where the file holds a NaN or infinite parameter ("accepted_nonfinite", a finding).
- ``evaluate`` (``neurocompile evaluate digits.onnx --input x.npy --labels y.npy --json out.json [options]``): exit 0
  only with labels that are integer class indices in [0, 10) (an integer array, or whole floats, (N,) or (N, 1),
  or a one-hot (N, 10) array), finite numeric inputs of shape (N, 1, 8, 8) with as many labels as samples, and
  option values in range; the JSON's ANN accuracy must then equal the accuracy of onnxruntime's argmax (and the
  SNN's, where it agrees with the ANN on every sample), every ``--at`` step reported and within T.

The oracle for a mutant named "none" (a seed as it is) is stricter: it must succeed ("refused_valid" otherwise).
Seeds: the bundled digits CNN (exported as an artifact with 3 reference inputs, and as NIR) and a LIF MLP written
with nir; exports are cached under the temp folder, keyed by a digest of neurocompile's sources. The HDF5 library
loops for ever on some damaged files, in C code that an in-process run cannot interrupt: :func:`check` reads a
byte-level mutant in a child process first and runs one that loops as a subprocess (a "hang" at its timeout).
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from hypothesis import strategies as st

from tests import fuzz_mutants as F

KINDS = ("artifact", "nir", "evaluate")
FINDINGS = F.FINDINGS + ("accepted_changed", "accepted_nonfinite", "accepted_bad_input", "refused_valid")
X_SEED = os.path.join(F.ROOT, "examples", "digits_test.npy")
Y_SEED = os.path.join(F.ROOT, "examples", "digits_test_labels.npy")
HUGE = (10**6, 10**6)  # a declared dataset of 8 TB: reading it fails at once (never a real allocation)


@dataclass
class FileMutant:
    kind: str                       # "artifact", "nir" or "evaluate"
    seed: str                       # which seed it was made from
    desc: str                       # the mutation, in words: the reproducer together with argv
    files: dict[str, bytes | None]  # written into the run's folder ({name: bytes}; None: a folder of that name)
    argv: list[str]                 # the command line; "{d}" stands for the run's folder
    benign: bool = False            # the mutation keeps the seed's meaning: compare with the seed's reference
    steps: int | None = None        # (nir, LIF MLP) the --steps it runs
    seed_data: bytes | None = None  # (artifact, nir) the unmutated file: the reference of a benign mutant
    timeout: int = F.TIMEOUT_S      # seconds before the run counts as a hang

    def __repr__(self) -> str:
        return f"FileMutant({self.kind}/{self.seed}: {self.desc}; neurocompile {' '.join(self.argv)})"

    def _repr_pretty_(self, p, cycle) -> None:  # hypothesis prints falsifying examples with this, not the bytes
        p.text(repr(self))

    @property
    def args(self) -> list[str]:  # benchmarks/fuzz_cli.py's "flags" column
        return list(self.argv)

    def command(self, d: str) -> list[str]:
        return [a.replace("{d}", d) for a in self.argv]


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def _load_npy(b: bytes | None) -> np.ndarray | None:
    """The array a .npy file's bytes hold, or None where they are no (non-pickled) .npy."""
    if b is None:
        return None
    try:
        return np.load(io.BytesIO(b), allow_pickle=False)
    except Exception:  # noqa: BLE001 - anything that is not a readable array
        return None


# ---- seeds ---------------------------------------------------------------------------------------------------------
def _source_key(*extra: bytes) -> str:
    """A digest of neurocompile's sources and ``extra``: the disk cache of seed files is stale when the product
    changes (an artifact written before the payload digest existed would be refused)."""
    h = hashlib.sha256()
    for p in sorted(glob.glob(os.path.join(F.ROOT, "neurocompile", "**", "*.py"), recursive=True)):
        h.update(p.encode() + open(p, "rb").read())
    for e in extra:
        h.update(e)
    return h.hexdigest()[:24]


def _cli_file(name: str, argv: list[str], files: dict[str, bytes]) -> bytes:
    """The file ``name`` that ``neurocompile ARGV`` writes in a fresh folder holding ``files`` (cached on disk)."""
    key = _source_key(name.encode(), " ".join(argv).encode(), *files.values())
    cache = os.path.join(tempfile.gettempdir(), "nc-fuzz-seeds", f"{key}-{name}")
    if os.path.exists(cache):
        return open(cache, "rb").read()
    with tempfile.TemporaryDirectory(prefix="nc-fuzz-seed-") as d:
        for k, v in files.items():
            open(os.path.join(d, k), "wb").write(v)
        out = F.run_cli([a.replace("{d}", d) for a in argv], d, keep=tuple(files))
        path = os.path.join(d, name)
        if out.rc != 0 or not os.path.exists(path):
            raise RuntimeError(f"the seed {name} could not be made: exit {out.rc}: {out.stderr.strip()[-500:]}")
        data = open(path, "rb").read()
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    tmp = f"{cache}.{os.getpid()}.tmp"
    open(tmp, "wb").write(data)
    os.replace(tmp, cache)
    return data


@lru_cache(maxsize=None)
def digits_x(lo: int, hi: int) -> np.ndarray:
    return np.load(X_SEED)[lo:hi].astype(np.float32)


@lru_cache(maxsize=None)
def artifact_seed() -> bytes:
    """The digits CNN exported with 3 reference inputs (the first 3 test images)."""
    return _cli_file("a.h5", ["export", F.DIGITS, "-o", "{d}/a.h5", "--input", "{d}/ref.npy", "--samples", "3"],
                     {"ref.npy": _npy(digits_x(0, 3))})


@lru_cache(maxsize=None)
def digits_nir_seed() -> bytes:
    """The digits CNN exported as NIR (neurocompile's CASC extension: exact metadata)."""
    return _cli_file("d.nir", ["export", F.DIGITS, "--format", "nir", "-o", "{d}/d.nir"], {})


LIF_DT, LIF_T = 1e-4, 12


@lru_cache(maxsize=None)
def lif_mlp_seed() -> bytes:
    """A small LIF MLP written with nir: input(6) -> fc1 (Affine) -> lif1 (10) -> fc2 (Affine) -> lif2 (4) -> output,
    per-neuron arrays as snnTorch writes them (tau = dt / (1 - beta) of a float32 beta, r = tau / dt: gain 1)."""
    import nir

    rng = np.random.default_rng(7)
    b1, b2 = np.float32(0.9), np.float32(0.8)
    tau1, tau2 = LIF_DT / (1 - np.float64(b1)), LIF_DT / (1 - np.float64(b2))

    def lif(n, tau, thr):
        return nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / LIF_DT), v_leak=np.zeros(n), v_threshold=np.full(n, thr),
                       v_reset=np.zeros(n))

    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([6])),
                            "fc1": nir.Affine(weight=rng.normal(0, 0.8, (10, 6)), bias=rng.normal(0.1, 0.1, 10)),
                            "lif1": lif(10, tau1, 1.0),
                            "fc2": nir.Affine(weight=rng.normal(0.2, 0.6, (4, 10)), bias=rng.normal(0, 0.1, 4)),
                            "lif2": lif(4, tau2, 0.5),
                            "output": nir.Output(output_type=np.array([4]))},
                     edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")])
    buf = io.BytesIO()
    nir.write(buf, g, compression=None)
    return buf.getvalue()


@lru_cache(maxsize=None)
def lif_x() -> np.ndarray:
    return np.random.default_rng(8).uniform(0, 1, (5, 6)).astype(np.float32)


# ---- HDF5 helpers --------------------------------------------------------------------------------------------------
def _h5_edit(data: bytes, edit) -> bytes:
    """``data`` (an HDF5 file's bytes) after ``edit(h5py.File)`` in place (in memory)."""
    import h5py

    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        edit(f)
    return buf.getvalue()


def _canon(v) -> bytes:
    """A value's exact identity: dtype, shape and bytes (strings and objects by their repr)."""
    a = np.asarray(v)
    if a.dtype.kind in "OUS":
        return f"{a.dtype.kind}{a.shape}{a.tolist()!r}".encode()
    return f"{a.dtype.str}{a.shape}".encode() + a.tobytes()


def payload(path_or_bytes) -> str | None:
    """SHA-256 of what an artifact's loader reads (root attributes; every attribute and dataset under graph,
    provenance and reference), or None where h5py cannot read all of it."""
    import h5py

    h = hashlib.sha256()
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    try:
        with h5py.File(src, "r") as f:
            def attrs(obj):
                for k in sorted(obj.attrs):
                    h.update(b"@" + k.encode() + b"=" + _canon(obj.attrs[k]))

            attrs(f)
            for top in ("graph", "provenance", "reference"):
                if top not in f:
                    h.update(b"-" + top.encode())
                    continue
                names = [top]
                f[top].visit(lambda n, t=top: names.append(f"{t}/{n}"))
                for n in names:
                    obj = f[n]
                    h.update(b"#" + n.encode())
                    attrs(obj)
                    if isinstance(obj, h5py.Dataset):
                        h.update(b"D" + _canon(obj[()]))
    except Exception:  # noqa: BLE001 - unreadable here is unreadable to the loader too
        return None
    return h.hexdigest()


def _dict_from_nir(data: bytes) -> tuple[dict, object]:
    """(the file's 'node' group as nested dicts, its version), as nir.serialization.hdf2dict reads it."""
    import h5py
    from nir.serialization import hdf2dict

    with h5py.File(io.BytesIO(data), "r") as f:
        return hdf2dict(f["node"]), (f["version"][()] if "version" in f else None)


@dataclass
class _Huge:
    """A declared dataset that holds no data (HDF5 allocates chunks on write only)."""
    shape: tuple[int, ...]
    dtype: str = "f8"


def _nir_bytes(node: dict, version) -> bytes:
    """Write nested dicts the way nir.write does (no compression; strings as UTF-8 datasets, edges as strings)."""
    import h5py

    def put(group, d: dict):
        for k, v in d.items():
            k = str(k)
            if isinstance(v, dict):
                put(group.create_group(k), v)
            elif isinstance(v, _Huge):
                group.create_dataset(k, shape=v.shape, dtype=v.dtype, chunks=True)
            elif isinstance(v, str):
                group.create_dataset(k, data=v, dtype=h5py.string_dtype())
            elif isinstance(v, np.ndarray) and v.dtype.kind in "OU":
                group.create_dataset(k, data=np.asarray([[_s(a) for a in r] for r in v] if v.ndim == 2 else
                                                        [_s(a) for a in v.reshape(-1)], dtype=object),
                                     dtype=h5py.string_dtype())
            else:
                group.create_dataset(k, data=v)

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        if version is not None:
            f.create_dataset("version", data=_s(version), dtype=h5py.string_dtype())
        put(f.create_group("node"), node)
    return buf.getvalue()


def _s(a) -> str:
    return a.decode("utf8", "replace") if isinstance(a, bytes) else str(a)


def _edges(node: dict) -> list[tuple[str, str]]:
    e = np.asarray(node.get("edges", []), dtype=object)
    return [(_s(a), _s(b)) for a, b in e.reshape(-1, 2)] if e.size and e.size % 2 == 0 else []


def _set_edges(node: dict, edges: list) -> None:
    node["edges"] = np.asarray(edges, dtype=object).reshape(-1, 2) if edges else np.zeros((0, 2), dtype=object)


# ---- artifact mutations --------------------------------------------------------------------------------------------
def _bytes_mutation(draw, data: bytes) -> tuple[bytes, str]:
    """Byte flips, truncation, a zeroed span or inserted junk at random offsets (as fuzz_mutants.m_bytes)."""
    data = bytearray(data)
    how = draw(st.sampled_from(["flip", "flip", "truncate", "zero-span", "insert"]))
    if how == "flip":
        pos = sorted(draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=4, unique=True)))
        xs = [draw(st.integers(1, 255)) for _ in pos]
        for p, x in zip(pos, xs):
            data[p] ^= x
        return bytes(data), f"bytes: xor {dict(zip(pos, xs))}"
    if how == "truncate":
        n = draw(st.integers(0, len(data) - 1))
        return bytes(data[:n]), f"bytes: truncated to {n} of {len(data)}"
    if how == "zero-span":
        p, n = draw(st.integers(0, len(data) - 1)), draw(st.integers(1, 64))
        data[p:p + n] = bytes(len(data[p:p + n]))
        return bytes(data), f"bytes: {n} zeroed at {p}"
    p, junk = draw(st.integers(0, len(data))), draw(st.binary(min_size=1, max_size=16))
    data[p:p] = junk
    return bytes(data), f"bytes: {junk.hex()} inserted at {p}"


def _value_change(draw, a: np.ndarray) -> tuple[np.ndarray, str]:
    """One element of a float array changed slightly, to NaN/inf or huge, or the whole array zeroed."""
    a = np.array(a, copy=True)
    how = draw(st.sampled_from(["nudge", "nudge", "scale", "nan", "inf", "-inf", "huge", "zero-all", "negate"]))
    if how == "zero-all" or not a.size:
        return np.zeros_like(a), "all zero"
    i = draw(st.integers(0, a.size - 1))
    v = a.flat[i]
    if how == "nudge":  # one ulp: the smallest change there is
        a.flat[i] = np.nextafter(v, np.asarray(np.inf if v <= 0 else -np.inf, a.dtype))  # in a's own precision
    elif how == "scale":
        a.flat[i] = v * 1.001 + 1e-3
    elif how == "negate":
        a.flat[i] = -v - 1
    else:
        a.flat[i] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e30}[how]
    return a, f"element {i} {how} ({v!r} -> {a.flat[i]!r})"


def _replace(group, name: str, data, **kw) -> None:
    attrs = dict(group[name].attrs)
    del group[name]
    ds = group.create_dataset(name, data=data, **kw)
    for k, v in attrs.items():
        ds.attrs[k] = v


def a_param(draw, f) -> str:
    name = draw(st.sampled_from(sorted(f["graph"])))
    ds = f["graph"][name]
    a, what = _value_change(draw, ds[()])
    ds[...] = a
    return f"param: graph/{name} ({ds.attrs['key']}) {what}"


def a_dataset(draw, f) -> str:
    names = [f"graph/{n}" for n in sorted(f["graph"])] + [f"reference/{n}" for n in sorted(f["reference"])]
    path = draw(st.sampled_from(names))
    grp, name = f[os.path.dirname(path)], os.path.basename(path)
    a = grp[name][()]
    how = draw(st.sampled_from(["reshape", "add-axis", "remove", "float64", "float16", "int32", "string", "empty",
                                "scalar", "drop-last", "huge-declared"]))
    if how == "reshape":
        _replace(grp, name, a.reshape(-1) if a.ndim != 1 else a.reshape(1, -1))
    elif how == "add-axis":
        _replace(grp, name, a[None])
    elif how == "remove":
        del grp[name]
    elif how in ("float64", "float16", "int32"):
        _replace(grp, name, a.astype(how))
    elif how == "string":
        _replace(grp, name, "0.5")
    elif how == "empty":
        _replace(grp, name, np.zeros((0,) + a.shape[1:], a.dtype))
    elif how == "scalar":
        _replace(grp, name, a.reshape(-1)[0] if a.size else 0.0)
    elif how == "drop-last":
        _replace(grp, name, a[..., :-1] if a.ndim else a)
    else:
        attrs = dict(grp[name].attrs)
        del grp[name]
        ds = grp.create_dataset(name, shape=HUGE, dtype="f4", chunks=True)
        for k, v in attrs.items():
            ds.attrs[k] = v
    return f"dataset: {path} {how}"


def a_key(draw, f) -> str:
    """The ``key`` attribute that names a parameter dataset (node/param)."""
    g = f["graph"]
    names = sorted(g)
    name = draw(st.sampled_from(names))
    how = draw(st.sampled_from(["remove", "unknown-param", "unknown-node", "swap", "duplicate", "extra-dataset"]))
    ds = g[name]
    key = str(ds.attrs["key"])
    if how == "remove":
        del ds.attrs["key"]
    elif how == "unknown-param":
        ds.attrs["key"] = key.rsplit("/", 1)[0] + "/gain"
    elif how == "unknown-node":
        ds.attrs["key"] = "/nowhere/" + key.rsplit("/", 1)[1]
    elif how == "swap":  # two parameters of the same shape trade places (the biases of two 32-channel convs)
        same = [n for n in names if n != name and g[n].shape == ds.shape]
        if not same:
            how = "swap (none of the same shape: the key of another)"
            same = [n for n in names if n != name]
        other = g[draw(st.sampled_from(same))]
        ds.attrs["key"], other.attrs["key"] = other.attrs["key"], key
        how += f" with {other.name}"
    elif how == "duplicate":
        other = g[draw(st.sampled_from([n for n in names if n != name]))]
        other.attrs["key"] = key
        how += f" ({other.name} also named {key})"
    else:
        g.create_dataset("p99", data=np.zeros(3, np.float32)).attrs["key"] = key.rsplit("/", 1)[0] + "/extra"
    return f"key: graph/{name} ({key}) {how}"


_DOC_VALUES = {"list": [[0, 0], [-1, -1], [], [1], [99, 99], None, "x"],
               "num": [0, -1, 0.5, float("nan"), float("inf"), 1e30, 10**9, 4097, None, "x", True]}
_SCHEDULE = {"steps": [0, -1, 1, 5, 40, 100_001, 10**9, 2.5, "21", None],
             "t_wake": [0, -1, 1, 4, 16, 10**9, None],
             "synapse_delay": [0, -1, 2, 10**6, 0.5],
             "readout_scale": [0, -1, float("nan"), 2.0, None],
             "input_scale": [2.0, 0, float("nan"), -1.0],
             "sleep": [False, None, 3],
             "inputs": [[], ["nowhere"], None],
             "gated_bias": [[], ["nowhere"], None],
             "depth": [0, -1, 99],
             "predicted_settle": [0, -1, 10**9]}


def a_doc(draw, f) -> str:
    """The graph's JSON document (attribute ``doc``): its nodes, shapes, outputs and schedule, or the text itself."""
    g = f["graph"]
    text = g.attrs["doc"]
    text = text.decode() if isinstance(text, bytes) else str(text)
    doc = json.loads(text)
    how = draw(st.sampled_from(["node-attr"] * 3 + ["schedule"] * 3 + ["node-op", "node-remove", "node-input",
                                "node-params", "shape", "outputs", "meta", "format", "text"]))
    nodes = doc["nodes"]
    if how == "node-attr":
        n = draw(st.sampled_from([n for n in nodes if n.get("attrs")]))
        k = draw(st.sampled_from(sorted(n["attrs"])))
        v = draw(st.sampled_from(_DOC_VALUES["list" if isinstance(n["attrs"][k], list) else "num"]))
        n["attrs"][k] = v
        what = f"node '{n['name']}' ({n['op']}) attr {k}={v!r}"
    elif how == "schedule":
        k = draw(st.sampled_from(sorted(_SCHEDULE) + ["delay", "arrival", "removed"]))
        if k == "removed":
            doc["schedule"] = None
            what = "schedule removed"
        elif k in ("delay", "arrival"):
            entries = doc["schedule"][k]
            node = draw(st.sampled_from(sorted(entries)))
            v = draw(st.sampled_from([-1, 0, 99, 10**9, None]))
            entries[node] = v
            what = f"schedule {k}[{node!r}]={v!r}"
        else:
            v = draw(st.sampled_from(_SCHEDULE[k]))
            doc["schedule"][k] = v
            what = f"schedule {k}={v!r}"
    elif how == "node-op":
        n = draw(st.sampled_from(nodes))
        old, n["op"] = n["op"], draw(st.sampled_from(["CIF", "IF", "LIF", "Conv", "Dense", "AvgPool", "MaxPool",
                                                      "Flatten", "Input", "Bogus"]))
        what = f"node '{n['name']}' op {old} -> {n['op']}"
    elif how == "node-remove":
        n = nodes.pop(draw(st.integers(0, len(nodes) - 1)))
        what = f"node '{n['name']}' ({n['op']}) removed"
    elif how == "node-input":
        n = draw(st.sampled_from([n for n in nodes if n.get("inputs")]))
        v = draw(st.sampled_from(["none", "unknown", "self", "twice", "last"]))
        n["inputs"] = {"none": [], "unknown": ["nowhere"], "self": [n["output"]], "twice": n["inputs"] * 2,
                       "last": [nodes[-1]["output"]]}[v]
        what = f"node '{n['name']}' inputs {v} -> {n['inputs']}"
    elif how == "node-params":
        n = draw(st.sampled_from([n for n in nodes if n.get("params")]))
        v = draw(st.sampled_from(["drop", "unknown", "none"]))
        n["params"] = {"drop": n["params"][1:], "unknown": n["params"] + ["gain"], "none": []}[v]
        what = f"node '{n['name']}' params {v}"
    elif how == "shape":
        k = draw(st.sampled_from(sorted(doc["shapes"])))
        v = draw(st.sampled_from([[], [0], [-1], [1, 8, 9], [10**6, 10**6], None]))
        doc["shapes"][k] = v
        what = f"shapes[{k!r}]={v!r}"
    elif how == "outputs":
        v = draw(st.sampled_from([[], ["nowhere"], doc["outputs"] * 2, None]))
        doc["outputs"] = v
        what = f"outputs={v!r}"
    elif how == "meta":
        k, v = draw(st.sampled_from([("neuron", "if"), ("neuron", "lif"), ("fixed_point", True), ("producer", "nir"),
                                     ("time_steps", 5)]))
        doc["meta"][k] = v
        what = f"meta {k}={v!r}"
    elif how == "format":
        doc["format"] = draw(st.sampled_from(["neurocompile-ir/2", "", None]))
        what = f"format={doc['format']!r}"
    else:
        v = draw(st.sampled_from(["removed", "empty", "truncated", "null", "list", "int", "bytes"]))
        if v == "removed":
            del g.attrs["doc"]
        else:
            g.attrs["doc"] = {"empty": "", "truncated": text[:len(text) // 2], "null": "null", "list": "[]", "int": 5,
                              "bytes": np.void(b"\xff\xfe" + text.encode()[:50])}[v]
        return f"doc: text {v}"
    g.attrs["doc"] = json.dumps(doc)
    return f"doc: {what}"


def a_provenance(draw, f) -> str:
    p = f["provenance"]
    k = draw(st.sampled_from(sorted(p.attrs) + ["(new)"]))
    how = draw(st.sampled_from(["edit", "invalid-json", "remove", "number"])) if k != "(new)" else "add"
    if how == "edit":
        old = json.loads(p.attrs[k])
        new = {"options": {**old, "neuron": "if"} if isinstance(old, dict) else old,
               "source_sha256": "0" * 64, "neurocompile": "9.9.9", "created": "2000-01-01T00:00:00Z",
               "source": "other.onnx", "target": "loihi2"}.get(k, "edited")
        p.attrs[k] = json.dumps(new)
    elif how == "invalid-json":
        p.attrs[k] = "{"
    elif how == "remove":
        del p.attrs[k]
    elif how == "number":
        p.attrs[k] = 7
    else:
        p.attrs["note"] = json.dumps("added")
    return f"provenance: {k} {how}"


def a_reference(draw, f) -> str:
    r = f["reference"]
    what = draw(st.sampled_from(["inputs", "snn_outputs", "snn_outputs", "ann_outputs", "ann_reference"]))
    if what == "ann_reference":
        v = draw(st.sampled_from(["removed", "none", "float64 interpreter of the converted graph", "int"]))
        if v == "removed":
            del r.attrs["ann_reference"]
        else:
            r.attrs["ann_reference"] = 3 if v == "int" else v
        return f"reference: ann_reference {v}"
    a = r[what][()]
    how = draw(st.sampled_from(["value", "value", "nan", "emptied", "drop-row", "drop-column", "removed"]))
    if how == "value":
        a, detail = _value_change(draw, a)
        r[what][...] = a
        return f"reference: {what} {detail}"
    if how == "nan":
        _replace(r, what, np.full_like(a, np.nan))
    elif how == "emptied":
        _replace(r, what, a[:0])
    elif how == "drop-row":
        _replace(r, what, a[:-1])
    elif how == "drop-column":
        _replace(r, what, a[:, :-1])
    else:
        del r[what]
    return f"reference: {what} {how}"


def a_format(draw, f) -> str:
    v = draw(st.sampled_from(["neurocompile-artifact/2", "removed", "", "int", "neurocompile-ir/1"]))
    if v == "removed":
        del f.attrs["format"]
    else:
        f.attrs["format"] = 1 if v == "int" else v
    return f"format: {v}"


def a_benign(draw, f) -> str:
    """Edits outside the payload: the artifact's meaning, and its payload, stay the seed's."""
    how = draw(st.sampled_from(["extra-root-group", "extra-root-dataset"]))
    if how == "extra-root-group":
        f.create_group("notes").attrs["who"] = "fuzz"
    else:
        f.create_dataset("junk", data=np.arange(5))
    return f"benign: {how}"


ARTIFACT_MUTATIONS = {"bytes": None, "param": a_param, "dataset": a_dataset, "key": a_key, "doc": a_doc,
                      "provenance": a_provenance, "reference": a_reference, "format": a_format, "benign": a_benign,
                      "repack": None, "none": None}
ARTIFACT_WEIGHTS = {"bytes": 4, "param": 3, "dataset": 3, "key": 2, "doc": 6, "reference": 3, "provenance": 1,
                    "format": 1, "benign": 1, "repack": 1, "none": 1}


def _repack(data: bytes) -> bytes:
    """The same payload in a file h5py writes anew (other bytes, other layout)."""
    import h5py

    src, out = io.BytesIO(data), io.BytesIO()
    with h5py.File(src, "r") as a, h5py.File(out, "w") as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        for k in a:
            a.copy(a[k], b, name=k)
    return out.getvalue()


def _artifact_argv(draw, lava: bool) -> list[str]:
    if draw(st.integers(0, 1)):
        target = draw(st.sampled_from(["reference"] * 5 + ["all"] * lava))  # lava-sim takes ~20 s a run
        return ["verify", "{d}/a.h5", "--target", target] + (["--json", "{d}/out.json"] if draw(st.booleans()) else [])
    return ["run", "{d}/a.h5", "--input", "{d}/x.npy", "--json", "{d}/out.json", "--quiet"] + \
        draw(st.sampled_from([[], [], ["--exact"]]))


@st.composite
def artifact_mutants(draw, kinds=tuple(ARTIFACT_MUTATIONS), lava: bool = True) -> FileMutant:
    seed = artifact_seed()
    kind = draw(st.sampled_from([k for k in kinds for _ in range(ARTIFACT_WEIGHTS.get(k, 1))]))
    if kind == "bytes":
        data, desc = _bytes_mutation(draw, seed)
    elif kind == "repack":
        data, desc = _repack(seed), "benign: repacked (the payload rewritten by h5py)"
    elif kind == "none":
        data, desc = seed, "none"
    else:
        box = {}

        def edit(f):
            box["desc"] = ARTIFACT_MUTATIONS[kind](draw, f)
        data = _h5_edit(seed, edit)
        desc = box["desc"]
    return FileMutant("artifact", "digits", desc, {"a.h5": data, "x.npy": _npy(digits_x(10, 13))},
                      _artifact_argv(draw, lava), benign=kind in ("none", "repack", "benign"), seed_data=seed)


# ---- NIR mutations -------------------------------------------------------------------------------------------------
class _Nir:
    """A NIR seed being mutated: its 'node' group as dicts (or raw bytes after a byte-level mutation)."""

    def __init__(self, seed: str):
        self.seed = seed
        self.data = lif_mlp_seed() if seed == "lif_mlp" else digits_nir_seed()
        self.node, self.version = _dict_from_nir(self.data)
        self.raw: bytes | None = None
        self.x: np.ndarray = lif_x() if seed == "lif_mlp" else digits_x(0, 3)
        self.benign = False

    @property
    def nodes(self) -> dict:
        return self.node["nodes"]

    def numeric_fields(self) -> list[tuple[str, str]]:
        return [(k, f) for k, n in sorted(self.nodes.items()) for f, v in sorted(n.items())
                if f not in ("type", "metadata") and isinstance(v, (np.ndarray, np.generic, int, float))]


_TYPE_SWAPS = {"LIF": ["IF", "LI", "I", "CubaLIF", "Threshold", "Spiky"], "IF": ["LIF", "Threshold", "I"],
               "Affine": ["Linear", "Scale", "Conv2d"], "Linear": ["Affine", "Scale"], "Conv2d": ["SumPool2d", "Conv1d",
               "AvgPool2d"], "AvgPool2d": ["SumPool2d", "Flatten"], "Scale": ["Linear", "Threshold"],
               "Input": ["Output"], "Output": ["Input", "Flatten"], "Flatten": ["Scale"]}


def n_edges(draw, c: _Nir) -> str:
    edges, names = _edges(c.node), sorted(c.nodes)
    how = draw(st.sampled_from(["remove", "duplicate", "add", "reverse", "unknown-end", "malformed"]))
    i = draw(st.integers(0, len(edges) - 1))
    if how == "remove":
        what = edges.pop(i)
    elif how == "duplicate":
        what = edges[i]
        edges.append(edges[i])
    elif how == "add":
        what = (draw(st.sampled_from(names)), draw(st.sampled_from(names)))
        edges.append(what)
    elif how == "reverse":
        what = edges[i] = edges[i][::-1]
    elif how == "unknown-end":
        what = edges[i] = (edges[i][0], "nowhere")
    else:
        v = draw(st.sampled_from(["three-columns", "empty", "ints", "flat"]))
        if v == "three-columns":
            c.node["edges"] = np.asarray([[a, b, b] for a, b in edges], dtype=object)
        elif v == "empty":
            _set_edges(c.node, [])
        elif v == "ints":
            c.node["edges"] = np.arange(len(edges) * 2).reshape(-1, 2)
        else:
            c.node["edges"] = np.asarray([x for e in edges for x in e], dtype=object)
        return f"edges: malformed ({v})"
    _set_edges(c.node, edges)
    return f"edges: {how} {what}"


def n_dead_branch(draw, c: _Nir) -> str:
    """Nodes that read a layer but reach no Output: no meaning of their own (benign)."""
    src, width = ("lif1", 10) if c.seed == "lif_mlp" else ("11_Flatten", 128)
    n = draw(st.integers(1, 3))
    rng = np.random.default_rng(n)
    c.nodes["dead_fc"] = {"type": "Affine", "weight": rng.normal(0, 1, (n, width)), "bias": np.zeros(n)}
    edges = _edges(c.node) + [(src, "dead_fc")]
    if draw(st.booleans()):
        tau = 1e-3
        c.nodes["dead_lif"] = {"type": "LIF", "tau": np.full(n, tau), "r": np.full(n, tau / LIF_DT),
                               "v_leak": np.zeros(n), "v_threshold": np.ones(n), "v_reset": np.zeros(n)}
        edges.append(("dead_fc", "dead_lif"))
    _set_edges(c.node, edges)
    c.benign = True
    return f"dead branch: {src} -> dead_fc ({n} units){' -> dead_lif' if 'dead_lif' in c.nodes else ''}"


def n_swap_type(draw, c: _Nir) -> str:
    k = draw(st.sampled_from([k for k, n in sorted(c.nodes.items()) if n.get("type") in _TYPE_SWAPS]))
    old = c.nodes[k]["type"]
    c.nodes[k]["type"] = new = draw(st.sampled_from(_TYPE_SWAPS[old]))
    return f"swap type: '{k}' {old} -> {new}"


def _mutate_field(draw, d: dict, k: str) -> str:
    """Replace ``d[k]`` by a drawn value (:func:`_field_value`), or remove it; returns how."""
    v, how = _field_value(draw, d[k])
    if v is None:
        del d[k]
    else:
        d[k] = v
    return how


def _field_value(draw, v: np.ndarray) -> tuple[object, str]:
    a = np.asarray(v)
    how = draw(st.sampled_from(["nan", "inf", "-inf", "zero", "negative", "huge", "tiny", "wrong-shape", "add-axis",
                                "transpose", "scalar", "int", "string", "empty", "removed", "huge-declared"]))
    af = a.astype(np.float64) if a.dtype.kind in "biuf" else np.zeros(a.shape)
    if how in ("nan", "inf", "-inf", "huge", "tiny") and a.size:
        out = af.copy()
        i = draw(st.integers(0, a.size - 1)) if draw(st.booleans()) else None  # one element, or all
        val = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e30, "tiny": 1e-30}[how]
        if i is None:
            out[...] = val
        else:
            out.flat[i] = val
        return out, f"{how} ({'all' if i is None else f'element {i}'})"
    if how == "zero":
        return np.zeros_like(af), how
    if how == "negative":
        return -af - (af == 0), how
    if how == "wrong-shape":
        return (af.reshape(-1)[:-1] if a.size > 1 else np.zeros(3)), how
    if how == "add-axis":
        return af[None, None], how
    if how == "transpose":
        return af.T.copy() if a.ndim > 1 else af.reshape(-1, 1), how
    if how == "scalar":
        return (af.reshape(-1)[0] if a.size else np.float64(0)), how
    if how == "int":
        return np.round(af).astype(np.int64), how
    if how == "string":
        return "0.5", how
    if how == "empty":
        return np.zeros((0,) + a.shape[1:]), how
    if how == "removed":
        return None, how
    return _Huge(HUGE), f"huge declared dataset {HUGE}"


def n_param(draw, c: _Nir) -> str:
    k, fld = draw(st.sampled_from(c.numeric_fields()))
    v, how = _field_value(draw, c.nodes[k][fld])
    if v is None:
        del c.nodes[k][fld]
    else:
        c.nodes[k][fld] = v
    return f"param: '{k}' ({c.nodes[k]['type']}) {fld} {how}"


def n_geometry(draw, c: _Nir) -> str:
    """Strides, padding, kernel, dilation, groups, shapes and Flatten's dims: 0, negative, huge, the wrong length."""
    geo = [(k, f) for k, f in c.numeric_fields() if f in (
        "stride", "padding", "kernel_size", "dilation", "groups", "input_shape", "shape", "start_dim", "end_dim",
        "input_type")]
    k, fld = draw(st.sampled_from(geo))
    a = np.asarray(c.nodes[k][fld])
    v = draw(st.sampled_from(["zero", "-1", "huge", "short", "long", "float", "one"]))
    new = {"zero": np.zeros_like(a), "-1": np.full_like(a, -1), "huge": np.full_like(a, 10**6),
           "short": a.reshape(-1)[:-1], "long": np.append(a.reshape(-1), 1), "float": a.astype(np.float64) + 0.5,
           "one": np.ones_like(a)}[v]
    c.nodes[k][fld] = new
    return f"geometry: '{k}' ({c.nodes[k]['type']}) {fld} {a.tolist()} -> {np.asarray(new).tolist()}"


_EXT_VALUES = [0, -1, 1, 0.5, 1e30, float("nan"), float("inf"), 10**9, 4097, "x", None, True]


def n_metadata(draw, c: _Nir) -> str:
    """neurocompile's extension: the graph's record (format, kind, dt, steps, t_wake, ...), a node's record (op, its
    attrs: threshold, levels, gamma, ...; role, of), and the plain metadata datasets beside them."""
    meta = c.node.setdefault("metadata", {})
    if c.seed == "lif_mlp":  # no extension of its own: give it one, as neurocompile's student export would
        doc = {"format": "neurocompile-nir/1", "kind": "student"}
        k = draw(st.sampled_from(["dt", "time_steps", "format"]))
        doc[k] = draw(st.sampled_from([1e-3, 2e-4, 0, -1e-4, float("nan"), "x", 12, 0.5, None] if k != "format" else
                                      ["neurocompile-nir/1", "neurocompile-nir/2"]))
        meta["neurocompile"] = json.dumps(doc)
        return f"metadata: graph extension {doc}"
    where = draw(st.sampled_from(["graph", "graph", "node", "node", "node-plain", "graph-plain", "invalid-json"]))
    if where == "graph":
        doc = json.loads(meta["neurocompile"])
        k = draw(st.sampled_from(sorted(doc) + ["gamma", "levels"]))
        doc[k] = v = draw(st.sampled_from(_EXT_VALUES + ["neurocompile-nir/2", "student"]))
        meta["neurocompile"] = json.dumps(doc)
        return f"metadata: graph {k}={v!r}"
    if where == "graph-plain":
        k = draw(st.sampled_from(["dt", "steps", "t_wake"]))
        return f"metadata: graph dataset {k} {_mutate_field(draw, meta, k)}"
    if where == "invalid-json":
        k = draw(st.sampled_from(["(graph)"] + sorted(c.nodes)))
        m = meta if k == "(graph)" else c.nodes[k].setdefault("metadata", {})
        m["neurocompile"] = draw(st.sampled_from(["{", "[]", "null", "7", '{"op": 5}']))
        return f"metadata: {k} neurocompile={m['neurocompile']!r}"
    k = draw(st.sampled_from([k for k, n in sorted(c.nodes.items()) if "neurocompile" in n.get("metadata", {})]))
    m = c.nodes[k]["metadata"]
    if where == "node-plain" and any(f in m for f in ("levels", "threshold")):
        f = draw(st.sampled_from([f for f in ("levels", "threshold") if f in m]))
        return f"metadata: '{k}' dataset {f} {_mutate_field(draw, m, f)}"
    doc = json.loads(m["neurocompile"])
    if "attrs" in doc and draw(st.integers(0, 3)):
        a = draw(st.sampled_from(sorted(doc["attrs"])))
        doc["attrs"][a] = v = draw(st.sampled_from(_EXT_VALUES + [[0, 0], [-1, -1], [9, 9]]))
        what = f"attrs.{a}={v!r}"
    else:
        a = draw(st.sampled_from(sorted(doc) + ["op"]))
        doc[a] = v = draw(st.sampled_from(["CIF", "IF", "LIF", "MaxPool", "AvgPool", "Bogus", "gate", "bias",
                                           "amplitude", "nowhere", None, 3]))
        what = f"{a}={v!r}"
    m["neurocompile"] = json.dumps(doc)
    return f"metadata: '{k}' ({c.nodes[k]['type']}) {what}"


def n_version(draw, c: _Nir) -> str:
    v = draw(st.sampled_from(["0.0.1", "99.0", "", None]))
    c.version = v
    c.benign = True  # the version names the format; the graph, and so its meaning, stays the seed's
    return f"version: {v!r}"


def n_input(draw, c: _Nir) -> str:
    """The --input array: per-step input (valid for a student), NaN, the wrong shape, empty."""
    how = draw(st.sampled_from(["per-step", "nan", "wrong-shape", "empty", "int", "per-step-too-long"]))
    x = c.x
    if how == "per-step":
        x = (np.random.default_rng(9).uniform(size=(len(x), LIF_T, *x.shape[1:])) < 0.5).astype(np.float32) * 2
        c.benign = True
    elif how == "per-step-too-long":
        x = np.repeat(x[:, None], LIF_T + 3, axis=1)
    elif how == "nan":
        x = x.copy()
        x.flat[0] = np.nan
    elif how == "wrong-shape":
        x = x[..., :-1]
    elif how == "empty":
        x = x[:0]
    else:
        x = np.round(x * 3).astype(np.int32)
        c.benign = True
    c.x = x
    return f"input: {how} -> shape {x.shape}"


def n_bytes(draw, c: _Nir) -> str:
    c.raw, desc = _bytes_mutation(draw, _nir_bytes(c.node, c.version))
    return desc


def n_rename(draw, c: _Nir) -> str:
    """A node renamed everywhere (benign)."""
    k = draw(st.sampled_from([k for k, n in sorted(c.nodes.items()) if n.get("type") not in ("Input", "Output")
                              and "neurocompile" not in n.get("metadata", {})]))
    new = draw(st.sampled_from(["renamed", "x.y", "a b", "ü"]))
    c.nodes[new] = c.nodes.pop(k)
    _set_edges(c.node, [(new if a == k else a, new if b == k else b) for a, b in _edges(c.node)])
    c.benign = True
    return f"rename: '{k}' -> '{new}'"


def n_none(draw, c: _Nir) -> str:
    c.benign = True
    return "none"


NIR_MUTATIONS = {"edges": n_edges, "dead_branch": n_dead_branch, "swap_type": n_swap_type, "param": n_param,
                 "geometry": n_geometry, "metadata": n_metadata, "version": n_version, "input": n_input,
                 "bytes": n_bytes, "rename": n_rename, "none": n_none}
NIR_WEIGHTS = {"param": 6, "edges": 3, "metadata": 4, "swap_type": 2, "geometry": 2, "dead_branch": 2, "bytes": 2,
               "input": 2}  # others 1
NIR_SEEDS = ("lif_mlp", "digits")


@st.composite
def nir_mutants(draw, kinds=tuple(NIR_MUTATIONS)) -> FileMutant:
    seed = draw(st.sampled_from(NIR_SEEDS))
    c = _Nir(seed)
    pool = [k for k in kinds for _ in range(NIR_WEIGHTS.get(k, 1))]
    skip = "geometry" if seed == "lif_mlp" else "rename"  # no strides or pools in the MLP; the CNN's names are in its
    pool = [k for k in pool if k != skip] or ["none"]      # extension's records
    kind = draw(st.sampled_from(pool))
    try:
        desc = NIR_MUTATIONS[kind](draw, c)
    except IndexError:  # nothing of that kind to change
        desc = n_none(draw, c)
    data = c.raw if c.raw is not None else _nir_bytes(c.node, c.version)
    argv = ["run", "{d}/net.nir", "--input", "{d}/x.npy", "--json", "{d}/out.json", "--quiet"]
    steps = None
    if seed == "lif_mlp":
        steps = LIF_T
        argv += ["--steps", str(steps)] + draw(st.sampled_from([[], [], ["--exact"], ["--discretization", "euler"],
                                                                ["--discretization", "zoh"], ["--dt", "2e-4"]]))
    else:
        argv += draw(st.sampled_from([[], ["--exact"]]))
    return FileMutant("nir", seed, desc, {"net.nir": data, "x.npy": _npy(c.x)}, argv, benign=c.benign, steps=steps,
                      seed_data=c.data)


# ---- evaluate mutations --------------------------------------------------------------------------------------------
N_EVAL = 10


@lru_cache(maxsize=None)
def eval_seed() -> tuple[np.ndarray, np.ndarray]:
    return digits_x(0, N_EVAL), np.load(Y_SEED)[:N_EVAL].astype(np.int64)


def e_labels(draw, files: dict, argv: list) -> str:
    _, y = eval_seed()
    y = y.copy()
    how = draw(st.sampled_from(["out-of-range", "negative", "float-fraction", "float-whole", "bool", "nan", "inf",
                                "shorter", "longer", "none", "one-hot", "one-hot-malformed", "column", "scores",
                                "string", "complex", "uint8", "scalar", "2d-wrong"]))
    i = draw(st.integers(0, N_EVAL - 1))
    if how == "out-of-range":
        y[i] = draw(st.sampled_from([10, 11, 255, 2**40]))
        how += f" (label {i} = {y[i]})"
    elif how == "negative":
        y[i] = draw(st.sampled_from([-1, -10]))
        how += f" (label {i} = {y[i]})"
    elif how == "float-fraction":
        y = y.astype(np.float64)
        y[i] += 0.5
    elif how == "float-whole":
        y = y.astype(draw(st.sampled_from([np.float32, np.float64])))
    elif how == "bool":
        y = y % 2 == 1
    elif how in ("nan", "inf"):
        y = y.astype(np.float64)
        y[i] = np.nan if how == "nan" else np.inf
    elif how == "shorter":
        y = y[:-1]
    elif how == "longer":
        y = np.append(y, 3)
    elif how == "none":
        y = y[:0]
    elif how == "one-hot":
        y = np.eye(10, dtype=draw(st.sampled_from([np.int64, np.float32])))[y]
    elif how == "one-hot-malformed":
        v = draw(st.sampled_from(["zero-row", "two-ones", "nine-columns", "eleven-columns", "negative", "nan-row"]))
        oh = np.eye(10)[y]
        if v == "zero-row":
            oh[i] = 0
        elif v == "two-ones":
            oh[i, (y[i] + 1) % 10] = 1
        elif v == "nine-columns":
            oh = oh[:, :9]
        elif v == "eleven-columns":
            oh = np.concatenate([oh, np.zeros((N_EVAL, 1))], 1)
        elif v == "negative":
            oh[i] = -oh[i]
        else:
            oh[i] = np.nan
        y, how = oh, f"{how} ({v}, row {i})"
    elif how == "column":
        y = y[:, None]
    elif how == "scores":  # soft scores: argmax is the label (a policy question more than a format)
        y = np.random.default_rng(i).uniform(0, 0.5, (N_EVAL, 10))
        y[np.arange(N_EVAL), eval_seed()[1]] = 0.9
    elif how == "string":
        y = y.astype("<U2")
    elif how == "complex":
        y = y.astype(np.complex64)
    elif how == "uint8":
        y = y.astype(np.uint8)
    elif how == "scalar":
        y = np.int64(y[0]).reshape(())
    else:
        y = y.reshape(2, -1)
    files["y.npy"] = _npy(y)
    return f"labels: {how} -> shape {y.shape} {y.dtype}"


def e_label_file(draw, files: dict, argv: list) -> str:
    which = draw(st.sampled_from(["y.npy", "y.npy", "x.npy"]))
    how = draw(st.sampled_from(["text", "object", "empty", "missing", "directory", "truncated", "npz"]))
    x, y = eval_seed()
    good = _npy(y if which == "y.npy" else x)
    if how == "text":
        files[which] = b"6 6 6 2 5 6 6 2 2 1\n"
    elif how == "object":
        buf = io.BytesIO()
        np.save(buf, np.array([1, None] * 5, dtype=object), allow_pickle=True)
        files[which] = buf.getvalue()
    elif how == "empty":
        files[which] = b""
    elif how == "missing":
        del files[which]
    elif how == "directory":
        files[which] = None
    elif how == "truncated":
        files[which] = good[:draw(st.integers(0, len(good) - 1))]
    else:
        buf = io.BytesIO()
        np.savez(buf, a=y)
        files[which] = buf.getvalue()
    return f"file: {which} {how}"


def e_inputs(draw, files: dict, argv: list) -> str:
    x, _ = eval_seed()
    x = x.copy()
    how = draw(st.sampled_from(["nan", "inf", "-inf", "drop-dim", "extra-dim", "wrong-trailing", "empty", "single",
                                "float64", "float16", "int", "bool", "complex", "string", "negative"]))
    i = draw(st.integers(0, x.size - 1))
    if how in ("nan", "inf", "-inf"):
        x.flat[i] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[how]
    elif how == "drop-dim":
        x = x[:, 0]
    elif how == "extra-dim":
        x = x[:, None]
    elif how == "wrong-trailing":
        x = x[..., :-1]
    elif how == "empty":
        x = x[:0]
    elif how == "single":
        x = x[0]
    elif how in ("float64", "float16"):
        x = x.astype(how)
    elif how == "int":
        x = np.round(x).astype(np.int32)
    elif how == "bool":
        x = x > 0.5
    elif how == "complex":
        x = x.astype(np.complex64)
    elif how == "string":
        x = x.astype("<U6")
    else:
        x = -x
    files["x.npy"] = _npy(x)
    return f"inputs: {how} -> shape {x.shape} {x.dtype}"


_OPTIONS = {"--at": ["0", "-1", "1000", "", "4,x", "4,4", "16", "1,2,3"], "--batch": ["0", "-1", "1", "3", "x"],
            "--steps": ["0", "-1", "100001", str(10**30), "1", "24", "2.5"]}


def e_options(draw, files: dict, argv: list) -> str:
    opt = draw(st.sampled_from(sorted(_OPTIONS)))
    v = draw(st.sampled_from(_OPTIONS[opt]))
    argv += [f"{opt}={v}"]  # "=": a value that starts with "-" is still the option's
    return f"option: {opt}={v!r}"


def e_none(draw, files: dict, argv: list) -> str:
    return "none"


EVAL_MUTATIONS = {"labels": e_labels, "label_file": e_label_file, "inputs": e_inputs, "options": e_options,
                  "none": e_none}
EVAL_WEIGHTS = {"labels": 6, "inputs": 4, "options": 3, "label_file": 3}


@st.composite
def evaluate_mutants(draw, kinds=tuple(EVAL_MUTATIONS)) -> FileMutant:
    x, y = eval_seed()
    files: dict[str, bytes | None] = {"x.npy": _npy(x), "y.npy": _npy(y)}
    argv = ["evaluate", F.DIGITS, "--input", "{d}/x.npy", "--labels", "{d}/y.npy", "--json", "{d}/out.json", "--quiet"]
    kind = draw(st.sampled_from([k for k in kinds for _ in range(EVAL_WEIGHTS.get(k, 1))]))
    desc = EVAL_MUTATIONS[kind](draw, files, argv)
    if kind != "options" and draw(st.integers(0, 4)) == 0:
        argv += draw(st.sampled_from([["--exact"], ["--at", "4,8,16"], ["--batch", "3"]]))
    return FileMutant("evaluate", "digits", desc, files, argv, benign=kind == "none")


def mutants(kind: str, kinds=None, lava: bool = True) -> st.SearchStrategy:
    """The strategy of one kind ("artifact", "nir", "evaluate"), optionally of some of its mutation names only;
    ``lava``: artifacts may be verified on lava-sim too (slow)."""
    make = {"artifact": artifact_mutants, "nir": nir_mutants, "evaluate": evaluate_mutants}[kind]
    kinds = tuple(kinds) if kinds is not None else tuple({"artifact": ARTIFACT_MUTATIONS, "nir": NIR_MUTATIONS,
                                                          "evaluate": EVAL_MUTATIONS}[kind])
    return make(kinds, lava) if kind == "artifact" else make(kinds)


# ---- running and judging -------------------------------------------------------------------------------------------
def write_files(m: FileMutant, d: str) -> None:
    for name, data in m.files.items():
        path = os.path.join(d, name)
        if data is None:
            os.makedirs(path)
        else:
            open(path, "wb").write(data)


def _refusal_or_fault(m: FileMutant, out: F.Outcome) -> tuple[str, str] | None:
    """fuzz_mutants.judge's verdict on everything but an exit 0 (None for exit 0); verify's own "NOT verified" (exit
    1, its report on stdout, stderr empty) is a clean outcome of its own."""
    first = out.stderr.strip().splitlines()[0][:240] if out.stderr.strip() else ""
    if out.rc is None:
        return "hang", f"no result within {m.timeout} s"
    if "Traceback" in out.stderr:
        return "traceback", first
    if out.rc == 3 or "internal error" in out.stderr:
        return "internal_error", first
    if out.rc == 1 and m.argv[0] == "verify" and not out.stderr.strip() and \
            out.stdout.strip().endswith("NOT verified: a target does not reproduce the exported readout"):
        lines = [ln for ln in out.stdout.splitlines() if "cannot run" in ln or "DIFFERS" in ln]
        return "not_verified", " / ".join(ln.strip()[:120] for ln in lines)[:240]
    if out.rc in (1, 2):
        if not F.clean_refusal(out.stderr, out.rc):
            return "bad_refusal", f"stderr is not one paragraph: {out.stderr.strip()[:300]!r}"
        if out.left:
            return "file_left", f"exit {out.rc} left {out.left}: {first}"
        if m.desc == "none":
            return "refused_valid", f"the unmutated seed is refused: {first}"
        return f"refused_{out.rc}", first
    if out.rc != 0:
        return "crash", f"exit {out.rc}: {first}"
    if [f for f in out.left if f.startswith(".neurocompile-")]:
        return "file_left", f"exit 0 left temporary files {out.left}"
    return None


def _outputs(out: F.Outcome) -> np.ndarray | None:
    if out.doc is None or "outputs" not in out.doc:
        return None
    try:
        return np.asarray(out.doc["outputs"], np.float64)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=8)
def _seed_run_outputs(seed: bytes, argv: tuple[str, ...]) -> np.ndarray:
    """What the unmutated artifact's ``run`` with these flags gives (the reference for an identical payload)."""
    m = FileMutant("artifact", "digits", "none", {"a.h5": seed, "x.npy": _npy(digits_x(10, 13))}, list(argv))
    with tempfile.TemporaryDirectory(prefix="nc-fuzz-") as d:
        write_files(m, d)
        out = F.run_cli(m.command(d), d, keep=tuple(m.files))
    y = _outputs(out)
    if out.rc != 0 or y is None:
        raise RuntimeError(f"the seed artifact does not run: exit {out.rc}: {out.stderr.strip()[-300:]}")
    return y


@lru_cache(maxsize=8)
def _seed_payload(seed: bytes) -> str:
    return payload(seed)


def judge_artifact(m: FileMutant, out: F.Outcome, d: str) -> tuple[str, str]:
    verdict = _refusal_or_fault(m, out)
    if verdict is not None:
        return verdict
    fp = payload(os.path.join(d, "a.h5")) if os.path.exists(os.path.join(d, "a.h5")) else None
    if fp != _seed_payload(m.seed_data):
        return "accepted_changed", "exit 0 on an artifact whose payload " + \
            ("h5py cannot read" if fp is None else "differs from the seed's") + f" ({m.argv[0]})"
    if m.argv[0] == "verify":
        return "match", "verified (the seed's payload)"
    y = _outputs(out)
    if y is None:
        return "no_json", f"exit 0 but the --json file is {'missing' if out.doc is None else 'unreadable'}"
    if not np.all(np.isfinite(y)):
        return "exit0_nonfinite", "outputs hold NaN/inf"
    ref = _seed_run_outputs(m.seed_data, tuple(m.argv))
    if y.shape != ref.shape or not F._agree(y, ref).all():
        return "wrong_numbers", f"outputs differ from the seed artifact's run (max |diff| " \
                                f"{np.max(np.abs(y - ref)) if y.shape == ref.shape else 'shapes differ'})"
    return "match", "the seed's payload, the seed's outputs"


# -- NIR: the independent reference ----------------------------------------------------------------------------------
def _lif_dt(node: dict, argv: list[str]) -> float | None:
    """The dt neurocompile uses: --dt, else the extension's record (format neurocompile-nir/1), else 1e-4."""
    if "--dt" in argv:
        return float(argv[argv.index("--dt") + 1])
    meta = node.get("metadata", {})
    if "neurocompile" in meta:
        try:
            doc = json.loads(meta["neurocompile"])
        except (TypeError, ValueError):
            return None
        if isinstance(doc, dict) and doc.get("format") == "neurocompile-nir/1" and doc.get("dt") is not None:
            dt = doc["dt"]
            return float(dt) if isinstance(dt, (int, float)) and not isinstance(dt, bool) and np.isfinite(dt) and \
                dt > 0 else None
    return LIF_DT


def _lif_chain(node: dict) -> list[str] | None:
    """The nodes from the Input to the Output, where those that reach the Output form one chain Input -> (Affine,
    Linear or LIF)* -> Output with one edge into each (nodes that reach no Output are ignored: dead branches)."""
    nodes, edges = node["nodes"], _edges(node)
    outs = [k for k, n in nodes.items() if n.get("type") == "Output"]
    if len(outs) != 1 or len(set(edges)) != len(edges) or any(a not in nodes or b not in nodes for a, b in edges):
        return None
    live, todo = {outs[0]}, [outs[0]]
    while todo:  # every node with a path to the Output
        k = todo.pop()
        for a, b in edges:
            if b == k and a not in live:
                live.add(a)
                todo.append(a)
    chain = [outs[0]]
    while nodes[chain[0]].get("type") != "Input":
        into = [a for a, b in edges if b == chain[0]]
        if len(into) != 1 or into[0] in chain or nodes[into[0]].get("type") not in ("Input", "Affine", "Linear", "LIF"):
            return None
        chain.insert(0, into[0])
    return chain if set(chain) == live and len(chain) > 2 else None


def lif_reference(node: dict, x: np.ndarray, steps: int, argv: list[str]) -> tuple[np.ndarray, float] | None:
    """(readout, margin): the LIF MLP as written in ``node`` (dicts as hdf2dict reads them), run by hand in float64
    as neurocompile discretizes it (frontends/nir/): I = W s + b into each LIF; v[t] = beta v[t-1] (1 - s[t-1]) +
    g I[t], s[t] = v[t] > v_threshold; snntorch: beta = 1 - dt/tau rounded to float32, g = r dt / tau (1 where within
    1e-6 of it); euler: beta in float64; zoh: beta = exp(-dt/tau), g = r (1 - beta). The readout is the mean over
    the steps of what reaches the Output; margin the smallest |v - v_threshold| seen (a spike that float rounding
    could flip lies within it). None where the file is no LIF MLP this loop reads (see :func:`_lif_chain`; a missing
    or malformed field, a non-finite value, tau <= 0, dt > tau, v_leak or v_reset != 0, shapes that do not fit)."""
    try:
        chain = _lif_chain(node)
        dt = _lif_dt(node, argv)
        if chain is None or dt is None:
            return None
        nodes = node["nodes"]
        disc = argv[argv.index("--discretization") + 1] if "--discretization" in argv else "snntorch"
        width = [int(v) for v in np.asarray(nodes[chain[0]]["shape"]).reshape(-1)]
        if len(width) != 1 or np.shape(x)[-1:] != tuple(width):
            return None
        n, layers = width[0], []
        for k in chain[1:-1]:
            nd = nodes[k]
            if nd["type"] in ("Affine", "Linear"):
                W = np.asarray(nd["weight"], np.float64)
                b = np.asarray(nd["bias"], np.float64) if nd["type"] == "Affine" else np.zeros(len(W))
                if W.ndim != 2 or W.shape[1] != n or b.shape != (W.shape[0],) or not np.all(np.isfinite(W)) or \
                        not np.all(np.isfinite(b)):
                    return None
                n = W.shape[0]
                layers.append(("fc", W, b))
                continue
            p = {f: np.asarray(nd[f], np.float64) for f in ("tau", "r", "v_leak", "v_threshold")}
            p["v_reset"] = np.asarray(nd.get("v_reset", 0.0), np.float64)
            if any(v.size not in (1, n) for v in p.values()):
                return None
            p = {f: np.broadcast_to(v.reshape(-1), (n,)) for f, v in p.items()}
            if not all(np.all(np.isfinite(v)) for v in p.values()) or np.any(p["tau"] <= 0) or \
                    np.any(p["v_leak"] != 0) or np.any(p["v_reset"] != 0) or (disc != "zoh" and np.any(dt > p["tau"])):
                return None
            if disc == "zoh":
                beta = np.exp(-dt / p["tau"])
                gain = p["r"] * (1 - beta)
            else:
                beta = 1 - dt / p["tau"]
                beta = beta.astype(np.float32).astype(np.float64) if disc == "snntorch" else beta
                gain = p["r"] * dt / p["tau"]
            layers.append(("lif", beta, np.where(np.abs(gain - 1) <= 1e-6, 1.0, gain), p["v_threshold"]))
        out_shape = [int(v) for v in np.asarray(nodes[chain[-1]]["shape"]).reshape(-1)]
        if out_shape != [n] or not any(L[0] == "lif" for L in layers):
            return None
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        return None
    x = np.asarray(x, np.float64)
    per_step = x.ndim == 3
    state = {i: [np.zeros((len(x), len(L[1]))), np.zeros((len(x), len(L[1])))] for i, L in enumerate(layers)
             if L[0] == "lif"}  # [v, s]
    total, margin = 0.0, np.inf
    for t in range(steps):
        h = (x[:, t] if t < x.shape[1] else np.zeros_like(x[:, 0])) if per_step else x
        for i, L in enumerate(layers):
            if L[0] == "fc":
                h = h @ L[1].T + L[2]
                continue
            v, s = state[i]
            v = L[1] * v * (1 - s) + L[2] * h
            s = (v > L[3]).astype(np.float64)
            margin = min(margin, float(np.min(np.abs(v - L[3]), initial=np.inf)))
            state[i], h = [v, s], s
        total = total + h
    return total / steps, margin


_TIME_CONSTANTS = ("tau", "tau_syn", "tau_mem")


def _nonfinite_params(node: dict) -> list[str]:
    """Where the file holds NaN or inf in a number (a parameter, a shape, neurocompile's extension record), leaving
    out the plain metadata datasets beside the record (labels for other tools, which neurocompile does not read)."""
    bad = []

    def walk(d, path):
        for k, v in d.items():
            if isinstance(v, dict):
                if k == "metadata":
                    walk({"neurocompile": v["neurocompile"]} if "neurocompile" in v else {}, f"{path}{k}/")
                else:
                    walk(v, f"{path}{k}/")
            elif isinstance(v, (np.ndarray, np.generic, float)) and np.asarray(v).dtype.kind in "fc" and \
                    not np.all(np.isfinite(v)):
                if k in _TIME_CONSTANTS and not np.isnan(v).any() and np.all(np.asarray(v) > 0):
                    continue  # +inf: a neuron without leak (snnTorch's beta = 1), the product's documented rule
                bad.append(f"{path}{k}")
            elif k == "neurocompile" and isinstance(v, str) and any(w in v for w in ("NaN", "Infinity")):
                bad.append(f"{path}{k}")
    walk(node, "")
    return bad


def judge_nir(m: FileMutant, out: F.Outcome, d: str) -> tuple[str, str]:
    verdict = _refusal_or_fault(m, out)
    if verdict is not None:
        return verdict
    y = _outputs(out)
    if y is None:
        return "no_json", f"exit 0 but the --json file is {'missing' if out.doc is None else 'unreadable'}"
    if not np.all(np.isfinite(y)):
        return "exit0_nonfinite", "outputs hold NaN/inf"
    try:
        node, _ = _dict_from_nir(m.files["net.nir"])
    except Exception:  # noqa: BLE001 - a byte mutant h5py cannot read, which the CLI ran
        return "accepted", "exit 0 on a file nir's reader cannot read"
    bad = _nonfinite_params(node)
    x = _load_npy(m.files["x.npy"])
    if bad:
        return "accepted_nonfinite", f"exit 0 on a file with NaN/inf in {', '.join(bad[:3])}"
    if x is not None and x.dtype.kind in "fc" and not np.all(np.isfinite(x)):
        return "accepted_bad_input", "exit 0 on an input with NaN/inf"
    if m.seed == "lif_mlp":
        ref = lif_reference(node, x, m.steps, m.argv) if x is not None else None
        if ref is None:
            return "accepted", "accepted; not a LIF MLP the hand loop reads (review)"
        r, margin = ref
        if y.shape != r.shape:
            return "wrong_numbers", f"outputs of shape {y.shape}, the hand loop's {r.shape}"
        ok = np.abs(y - r) <= 1e-6
        if ok.all():
            return "match", f"equals the float64 hand loop (margin {margin:.2g})"
        if margin < 1e-4:
            return "boundary", f"differs from the hand loop, with a membrane {margin:.2g} from its threshold"
        return "wrong_numbers", f"differs from the float64 hand loop (max |diff| {np.max(np.abs(y - r)):.3g}, margin " \
                                f"{margin:.2g})"
    same = _nir_content(m.files["net.nir"]) == _nir_content(m.seed_data)
    digits_input = x is not None and x.dtype.kind in "biuf" and x.ndim in (3, 4) and x.shape[-3:] == (1, 8, 8)
    if not digits_input:
        return "accepted", "accepted; no independent reference for this mutant (review)"
    r = F._ort_run(F.DIGITS, _tmp_npy(d, x))  # the CNN is lossless: its SNN readout is the ANN's
    agree = y.shape == r.shape and bool(F._agree(y, r).all())
    if m.benign or same:
        return ("match", "equals onnxruntime on the ONNX model") if agree else \
            ("wrong_numbers", f"differs from onnxruntime on the ONNX model, which it keeps "
                              f"({'the same content' if same else 'a benign mutation'})")
    if agree:  # the file changed, its readout did not: a field neurocompile ignores? (or an edit without effect)
        return "accepted_unchanged", "accepted with the unmutated network's outputs (an ignored field? review)"
    return "accepted", "accepted; no independent reference for this mutant (review)"


@lru_cache(maxsize=16)
def _nir_content(data: bytes | None) -> str | None:
    """A digest of what nir's reader sees in a NIR file (its version and every field), or None if it cannot read it:
    a byte-level mutant with the seed's content must mean what the seed means."""
    try:
        node, version = _dict_from_nir(data)
    except Exception:  # noqa: BLE001 - unreadable
        return None
    h = hashlib.sha256(_canon(str(version)))

    def walk(d: dict, path: str) -> None:
        for k in sorted(d):
            if isinstance(d[k], dict):
                walk(d[k], f"{path}{k}/")
            else:
                h.update(f"{path}{k}=".encode() + _canon(d[k]))
    walk(node, "")
    return h.hexdigest()


# -- evaluate: which inputs are valid ---------------------------------------------------------------------------------
def eval_validity(m: FileMutant) -> tuple[str | None, np.ndarray | None, np.ndarray | None]:
    """(why the command must be refused or None, inputs, labels as int64)."""
    x, y = _load_npy(m.files.get("x.npy")), _load_npy(m.files.get("y.npy"))
    if x is None:
        return "the input is no readable .npy array", None, None
    if x.dtype.kind not in "biuf":
        return f"input dtype {x.dtype}", None, None
    if x.shape == (1, 8, 8):
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != (1, 8, 8) or len(x) == 0:
        return f"input shape {x.shape}", None, None
    if not np.all(np.isfinite(x.astype(np.float64))):
        return "input holds NaN/inf", None, None
    if y is None:
        return "the labels are no readable .npy array", None, None
    if y.dtype.kind == "b":
        return "bool labels", None, None
    if y.dtype.kind not in "iuf":
        return f"label dtype {y.dtype}", None, None
    yf = y.astype(np.float64)
    if y.ndim == 2 and y.shape[1] == 10:  # one-hot: exactly one 1 per row, zeros elsewhere
        if not (np.all((yf == 0) | (yf == 1)) and np.all(yf.sum(1) == 1)):
            return "malformed one-hot labels", None, None
        yf = yf.argmax(1).astype(np.float64)
    elif y.ndim == 2 and y.shape[1] == 1:
        yf = yf[:, 0]
    elif y.ndim != 1:
        return f"label shape {y.shape}", None, None
    if len(yf) != len(x):
        return f"{len(yf)} labels for {len(x)} samples", None, None
    if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)) or np.any(yf < 0) or np.any(yf >= 10):
        return "labels that are no class index in [0, 10)", None, None
    for a in m.argv:
        if "=" in a and a.startswith("--"):
            opt, v = a.split("=", 1)
            try:
                vals = [int(s) for s in v.split(",")] if opt == "--at" else [int(v)]
            except ValueError:
                return f"{opt}={v!r} is no integer", None, None
            lo, hi = {"--at": (1, 10**9), "--batch": (1, 10**9), "--steps": (1, 100_000)}[opt]
            if not all(lo <= s <= hi for s in vals):
                return f"{opt}={v!r} out of range", None, None
    return None, x, yf.astype(np.int64)


def judge_evaluate(m: FileMutant, out: F.Outcome, d: str) -> tuple[str, str]:
    verdict = _refusal_or_fault(m, out)
    if verdict is not None:
        return verdict
    why, x, y = eval_validity(m)
    if why is not None:
        return "accepted_bad_input", f"exit 0 with {why}"
    doc = out.doc
    if doc is None or "summary" not in doc:
        return "no_json", f"exit 0 but the --json file is {'missing' if doc is None else 'unreadable'}"
    s = doc["summary"]
    T = s.get("steps")
    ats = [int(a) for a in doc.get("at", [])]
    for a in m.argv:
        if a.startswith("--at="):
            asked = {int(v) for v in a.split("=", 1)[1].split(",")}
            if set(ats) != asked:
                return "wrong_numbers", f"--at {sorted(asked)} reported as {ats} (T = {T})"
    if not ats or any(not 1 <= a <= T for a in ats):
        return "wrong_numbers", f"reported steps {ats} outside [1, T = {T}]"
    if s.get("samples") != len(x):
        return "wrong_numbers", f"summary says {s.get('samples')} samples, the input holds {len(x)}"
    pred = F._ort_run(F.DIGITS, _tmp_npy(d, x)).argmax(1)
    want = float(np.mean(pred == y))
    got = [s.get("ann_accuracy"), s.get("snn_accuracy")]
    if not all(isinstance(v, (int, float)) and np.isfinite(v) and 0 <= v <= 1 for v in got):
        return "wrong_numbers", f"accuracies {got} are no fractions"
    if abs(got[0] - want) > 1e-9:
        return "wrong_numbers", f"ANN accuracy {got[0]} != onnxruntime's argmax accuracy {want}"
    if s.get("agreement") == 1.0 and abs(got[1] - want) > 1e-9:
        return "wrong_numbers", f"SNN accuracy {got[1]} != {want} although it agrees with the ANN on every sample"
    return "match", f"accuracy {want:.2f} as onnxruntime's argmax"


def _tmp_npy(d: str, x: np.ndarray) -> str:
    path = os.path.join(d, "oracle-x.npy")
    np.save(path, x.astype(np.float32))
    return path


JUDGES = {"artifact": judge_artifact, "nir": judge_nir, "evaluate": judge_evaluate}


_PROBE = ("import sys, h5py\n"
          "def read(name, obj):\n"
          "    dict(obj.attrs)\n"
          "    if isinstance(obj, h5py.Dataset) and obj.size < 10**8: obj[()]\n"
          "with h5py.File(sys.argv[1], 'r') as f:\n"
          "    dict(f.attrs)\n"
          "    f.visititems(read)\n")


def _hdf5_loops(path: str, timeout: float = 10) -> bool:
    """Whether the HDF5 library loops for ever reading this (damaged) file: it does on some, in C code, where an
    in-process run's SIGALRM never gets control back (read in a child process that can be killed)."""
    import subprocess
    import sys

    try:
        subprocess.run([sys.executable, "-c", _PROBE, path], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return True
    return False


def check(m: FileMutant, d: str, via: str = "in-process") -> tuple[str, str, F.Outcome]:
    """Run one mutant in the empty folder ``d`` and judge it. A byte-level mutant whose file makes HDF5 loop runs as
    a subprocess (killed at the timeout: a "hang") instead of in this process (which it would take down)."""
    write_files(m, d)
    if via == "in-process" and m.desc.startswith("bytes") and \
            any(_hdf5_loops(os.path.join(d, k)) for k in m.files if k.endswith((".h5", ".nir"))):
        via = "subprocess"
    out = F.run_cli(m.command(d), d, via, keep=tuple(m.files), timeout=m.timeout)
    return (*JUDGES[m.kind](m, out, d), out)


def _artifact_fixed(desc: str, edit, argv: list[str] | None = None) -> FileMutant:
    seed = artifact_seed()
    return FileMutant("artifact", "digits", desc, {"a.h5": _h5_edit(seed, edit), "x.npy": _npy(digits_x(10, 13))},
                      argv or ["verify", "{d}/a.h5", "--target", "reference"], seed_data=seed)


def _nir_fixed(seed: str, desc: str, change, argv_extra=(), benign=False) -> FileMutant:
    c = _Nir(seed)
    change(c)
    argv = ["run", "{d}/net.nir", "--input", "{d}/x.npy", "--json", "{d}/out.json", "--quiet"]
    steps = LIF_T if seed == "lif_mlp" else None
    if steps:
        argv += ["--steps", str(steps)]
    return FileMutant("nir", seed, desc, {"net.nir": _nir_bytes(c.node, c.version), "x.npy": _npy(c.x)},
                      argv + list(argv_extra), benign=benign, steps=steps, seed_data=c.data)


def _eval_fixed(desc: str, x=None, y=None, extra=()) -> FileMutant:
    x0, y0 = eval_seed()
    files = {"x.npy": _npy(x0 if x is None else x), "y.npy": _npy(y0 if y is None else y)}
    return FileMutant("evaluate", "digits", desc, files, ["evaluate", F.DIGITS, "--input", "{d}/x.npy", "--labels",
                                                          "{d}/y.npy", "--json", "{d}/out.json", "--quiet", *extra])


def _nir_bytes_fixed(seed: str, desc: str, at: int, junk: bytes, argv_extra=()) -> FileMutant:
    """A NIR seed rewritten by :func:`_nir_bytes` (deterministic bytes) with ``junk`` inserted at ``at``."""
    m = _nir_fixed(seed, desc, lambda c: None, argv_extra)
    data = bytearray(m.files["net.nir"])
    data[at:at] = junk
    m.files["net.nir"] = bytes(data)
    return m


def _nir_zeroed_fixed(seed: str, desc: str, at: int, n: int, timeout: int = F.TIMEOUT_S) -> FileMutant:
    m = _nir_fixed(seed, desc, lambda c: None)
    data = bytearray(m.files["net.nir"])
    data[at:at + n] = bytes(len(data[at:at + n]))
    m.files["net.nir"] = bytes(data)
    m.timeout = timeout
    return m


def _artifact_heap_zeroed(desc: str) -> FileMutant:
    """The seed artifact with 32 bytes zeroed 10 bytes into its first global heap collection ("GCOL": where HDF5 keeps
    variable-length strings such as the format attribute): h5py loops for ever reading it."""
    seed = artifact_seed()
    at = seed.index(b"GCOL") + 10
    data = seed[:at] + bytes(32) + seed[at + 32:]
    return FileMutant("artifact", "digits", desc, {"a.h5": data, "x.npy": _npy(digits_x(10, 13))},
                      ["verify", "{d}/a.h5", "--target", "reference"], seed_data=seed, timeout=15)


def _set_field(node: str, field: str, value):
    def change(c: _Nir) -> None:
        c.nodes[node][field] = value
    return change


def known_findings() -> list[tuple[str, str, object]]:
    """(description, how to run it, a function that builds the mutant) behind the findings of fuzz runs of the file
    kinds, replayed every time (some were fixed while the harness was written: they stay as regression tests). The
    mutants are built when a test runs, not when pytest collects it (the seeds take an export)."""
    y0 = np.load(Y_SEED)[:N_EVAL].astype(np.int64)
    onehot = np.eye(10)[y0]
    onehot[6] = -onehot[6]
    found = []

    def add(desc: str, build, via: str = "in-process") -> None:
        found.append((desc, via, lambda: build(desc)))

    # NIR: h5py raises RuntimeError or KeyError (not OSError) for some damaged files: "internal error" (exit 3)
    add("bytes: df0b8d7570cf7e1e3dc3e2 inserted at 572",
        lambda d: _nir_bytes_fixed("lif_mlp", d, 572, bytes.fromhex("df0b8d7570cf7e1e3dc3e2")))
    add("bytes: 670dbd inserted at 819 (--discretization zoh)",
        lambda d: _nir_bytes_fixed("lif_mlp", d, 819, bytes.fromhex("670dbd"), ["--discretization", "zoh"]))
    add("bytes: 38 zeroed at 888 (h5py: KeyError)", lambda d: _nir_zeroed_fixed("lif_mlp", d, 888, 38))
    # NIR: the HDF5 library loops for ever on some damaged files (C code: SIGALRM cannot stop it in-process)
    add("bytes: 32 zeroed at 1426 (HDF5 loops)", lambda d: _nir_zeroed_fixed("lif_mlp", d, 1426, 32, timeout=15),
        via="subprocess")
    # artifacts too: the loader reads the file with h5py before it checks the digest
    add("artifact bytes: 32 zeroed in the first global heap (HDF5 loops)", _artifact_heap_zeroed, via="subprocess")
    # NIR: fields that the extension's record supersedes are not checked: a Conv2d's own bias where the file holds a
    # gated bias for it, an IF's r where its record makes it a CIF (NaN, inf or any value: ignored)
    add("param: '0_Conv' (Conv2d) bias nan (all)",
        lambda d: _nir_fixed("digits", d, _set_field("0_Conv", "bias", np.full(16, np.nan, np.float32))))
    add("param: '9_Floor' (IF) r inf (all)",
        lambda d: _nir_fixed("digits", d, _set_field("9_Floor", "r", np.full((32, 4, 4), np.inf)), ["--exact"]))
    # evaluate: --at '' means every step (an empty list of steps, silently)
    add("option: --at=''", lambda d: _eval_fixed(d, extra=["--at="]))
    # evaluate: labels outside the model's classes, malformed one-hot rows (fixed during the run)
    add("labels: out-of-range (label 0 = 10)", lambda d: _eval_fixed(d, y=np.r_[10, y0[1:]]))
    add("labels: one-hot-malformed (negative, row 6)", lambda d: _eval_fixed(d, y=onehot))
    return found


def artifact_edits() -> list[tuple[str, object]]:
    """(description, a function that builds the mutant): edits of an artifact's payload that no loader check but its
    digest can see (a valid file of another network, or other reference data): each must be refused."""
    def nudge(path: str, i: int = 0):
        def edit(f):
            a = f[path][()]
            a.flat[i] = np.nextafter(a.flat[i], np.asarray(np.inf, a.dtype))
            f[path][...] = a
        return edit

    def swap_biases(f):  # /3/Conv/bias and /7/Conv/bias: both (32,)
        g = f["graph"]
        a, b = [n for n in g if g[n].attrs["key"] in ("/3/Conv/bias", "/7/Conv/bias")]
        g[a].attrs["key"], g[b].attrs["key"] = g[b].attrs["key"], g[a].attrs["key"]

    def doc(change):
        def edit(f):
            d = json.loads(f["graph"].attrs["doc"])
            change(d)
            f["graph"].attrs["doc"] = json.dumps(d)
        return edit

    def provenance(f):
        f["provenance"].attrs["created"] = json.dumps("2000-01-01T00:00:00Z")

    def cif_threshold(d):
        next(n for n in d["nodes"] if n["op"] == "CIF")["attrs"]["threshold"] = 0.5

    run = ["run", "{d}/a.h5", "--input", "{d}/x.npy", "--json", "{d}/out.json", "--quiet"]
    edits = [("param: /0/Conv/weight element 0 one ulp up", nudge("graph/p0"), None),
             ("key: the biases of /3/Conv and /7/Conv swapped", swap_biases, run),
             ("doc: schedule steps=40", doc(lambda d: d["schedule"].update(steps=40)), run),
             ("doc: a CIF threshold 1.0 -> 0.5", doc(cif_threshold), None),
             ("provenance: created edited", provenance, None),
             ("reference: snn_outputs element 3 one ulp up", nudge("reference/snn_outputs", 3), None)]
    return [(desc, lambda desc=desc, edit=edit, argv=argv: _artifact_fixed(desc, edit, argv))
            for desc, edit, argv in edits]


def seeds() -> list[FileMutant]:
    """Every seed unmutated, with each command that judges it: all must succeed (and match their references)."""
    run = ["run", "{d}/a.h5", "--input", "{d}/x.npy", "--json", "{d}/out.json", "--quiet"]
    return [_artifact_fixed("none", lambda f: None), _artifact_fixed("none", lambda f: None, run),
            _nir_fixed("lif_mlp", "none", lambda c: None, benign=True),
            _nir_fixed("lif_mlp", "none", lambda c: None, ["--exact", "--discretization", "zoh"], benign=True),
            _nir_fixed("digits", "none", lambda c: None, benign=True), _eval_fixed("none")]


__all__ = ["FileMutant", "KINDS", "FINDINGS", "mutants", "check", "seeds", "payload", "lif_reference"]
