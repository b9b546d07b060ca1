"""The deployment artifact: one HDF5 file that holds a converted network and what it takes to verify it.

Layout (``format`` attribute ``neurocompile-artifact/2``):
- ``graph``: the converted IR as JSON text (attribute ``doc``) and its parameters as datasets (attribute
  ``key``: ``node/param``);
  the wake/sleep schedule is part of it;
- ``provenance`` (attributes): source file name and SHA-256, neurocompile version, conversion options,
  creation time;
- ``reference``: a few inputs (``inputs``), the ANN's outputs for them (``ann_outputs``, from the named
  independent reference, attribute ``ann_reference``) and the spiking readout the reference simulator gave
  at export (``snn_outputs``), so ``verify`` can re-run them anywhere without the ONNX file; attribute
  ``ann_tolerance``: the largest relative error max |ANN - SNN| / max |ANN| the stored outputs may show
  (:func:`ann_tolerance`);
- ``digest`` (attribute, JSON): the SHA-256 of every part (the graph document, the schedule, each parameter
  array by name with its dtype and shape, the provenance, each reference dataset and attribute) and of all of
  them together (:func:`seal`).

Every load checks, in this order and before anything is trusted: the format; the declared size of every
dataset (:data:`neurocompile.limits.MAX_ARTIFACT_BYTES`, before any is read: a damaged or hostile file cannot make it allocate terabytes);
the digest (a part that differs is named: "parameter '/0/Conv/weight'", "the ANN outputs", ...); then the
graph, and the reference data: finite, at least one input, as many outputs as inputs, and the stored ANN and
SNN outputs within the recorded ``ann_tolerance`` of each other. Any failure is a one-paragraph
ModelLoadError naming the file (an HDF5 library error of any exception type included: never an internal error;
a file whose damaged HDF5 structure makes the library loop for ever is refused after a timeout: the file is read
once into memory and first read in a forked child, :mod:`neurocompile.hdf5_probe`).

The digest detects damage and edits made after export, not a forger: whoever can write the file can also
write a new digest (it is no signature). ``verify`` still re-runs the reference inputs.

Artifacts of format ``neurocompile-artifact/1`` (written before the digest) are refused: they carry no digest,
so nothing would tell a damaged or edited one from the export; export the model again.

Written atomically (a failed export leaves no file).
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile import hdf5_probe, limits
from neurocompile.errors import ModelLoadError, NeurocompileError
from neurocompile.ir import Graph

FORMAT = "neurocompile-artifact/2"
OLD_FORMATS = ("neurocompile-artifact/1",)  # no digest: refused (see the module docstring)
SUFFIXES = (".h5", ".hdf5")
FLOAT32_RTOL = 1e-5  # a settled floating-point CIF network vs a float32 ANN (evaluate.FLOAT32_RTOL)
_HINT = "Export it again with 'neurocompile export'"


def is_artifact(path: str) -> bool:
    """A path names an artifact (not an ONNX file or a saved IR), by its extension."""
    return str(path).lower().endswith(SUFFIXES)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("neurocompile")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Artifact:
    graph: Graph
    inputs: np.ndarray
    ann_outputs: np.ndarray | None
    ann_reference: str
    snn_outputs: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    ann_tolerance: float | None = None  # see ann_tolerance(); None without ANN outputs


def ann_error(ann: np.ndarray, snn: np.ndarray) -> float:
    """max |ANN - SNN| / max |ANN| (the scale floored at 1e-30): what ``ann_tolerance`` bounds."""
    ann, snn = np.asarray(ann, dtype=np.float64), np.asarray(snn, dtype=np.float64)
    return float(np.abs(snn - ann).max()) / max(float(np.abs(ann).max()), 1e-30)


def ann_tolerance(graph: Graph, ann: np.ndarray, snn: np.ndarray) -> float:
    """The tolerance an export records for its stored ANN and SNN outputs: a floating-point CIF network run to
    its settling step is lossless up to the float32 rounding of an onnxruntime ANN, so it promises
    FLOAT32_RTOL; other conversions (fixed point, the IF baseline, a shortened T, LIF students) promise only the
    error the export measured. Never below the measured error: the stored data always meets its own record."""
    from neurocompile.pipeline import lossless_kind

    s = graph.schedule
    settled = s is not None and s.steps >= s.predicted_settle and not graph.meta.get("fixed_point")
    return max(FLOAT32_RTOL if settled and lossless_kind(graph) else 0.0, ann_error(ann, snn))


def save(path: str, art: Artifact) -> None:
    """Write ``art`` to ``path`` atomically, sealed with its digest. Reference data that a load would refuse
    (non-finite, no inputs, outputs beyond ``ann_tolerance``) raises before any file exists."""
    import h5py

    from neurocompile.atomic import write_atomic

    inputs = np.asarray(art.inputs, dtype=np.float32)
    snn = np.asarray(art.snn_outputs, dtype=np.float64)
    ann = None if art.ann_outputs is None else np.asarray(art.ann_outputs, dtype=np.float64)
    problem = _reference_problem(inputs, ann, snn, art.ann_tolerance)
    if problem:
        raise NeurocompileError(f"cannot write the artifact: {problem}", file=path)
    doc, arrays = art.graph.to_doc()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:  # built in memory: nothing touches the disk until it is complete
        f.attrs["format"] = FORMAT
        g = f.create_group("graph")
        g.attrs["doc"] = json.dumps(doc)
        for i, (key, value) in enumerate(arrays.items()):  # node names hold "/": numbered, the key as attribute
            g.create_dataset(f"p{i}", data=value).attrs["key"] = key
        p = f.create_group("provenance")
        for key, value in art.provenance.items():
            p.attrs[key] = json.dumps(value)
        r = f.create_group("reference")
        r.attrs["ann_reference"] = art.ann_reference
        r.create_dataset("inputs", data=inputs)
        r.create_dataset("snn_outputs", data=snn)
        if ann is not None:
            r.create_dataset("ann_outputs", data=ann)
            r.attrs["ann_tolerance"] = json.dumps(art.ann_tolerance)
        seal(f, path)
    data = buf.getvalue()
    write_atomic({path: lambda fh: fh.write(data)})


def seal(f, path: str | None = None) -> None:
    """Write the digest of the open HDF5 artifact ``f`` (what it holds now) into it: ``save`` calls it; a test
    that edits a part on purpose reseals to reach the checks behind the digest. ``path`` names it in errors."""
    f.attrs["digest"] = json.dumps(_digest(_read(f, path or str(f.filename))))


def load(path: str) -> Artifact:
    """Read and check an artifact (ModelLoadError naming the file on any damage, edit or absurd size)."""
    def read(f) -> tuple[Any, dict[str, Any]]:
        fmt = f.attrs.get("format")
        if fmt in OLD_FORMATS:
            raise ModelLoadError(f"the artifact has the old format {fmt!r}, which carries no digest: damage or "
                                 "edits since its export could not be detected, so it is not loaded", file=path,
                                 hint=f"{_HINT} (this version writes {FORMAT!r}, checked on every load)")
        if fmt != FORMAT:
            nir_file = "node" in f and "version" in f  # what nir.write writes
            raise ModelLoadError(f"not a neurocompile artifact (format {fmt!r}, expected "
                                 f"{FORMAT!r})" + ("; it holds a NIR graph (nir.write's layout)" if nir_file else ""),
                                 file=path, hint="neurocompile reads NIR files by their extension: name it "
                                                 "net.nir" if nir_file else None)
        if "digest" not in f.attrs:
            raise ModelLoadError("the artifact carries no digest, so damage or edits could not be detected",
                                 file=path, hint=_HINT)
        return f.attrs["digest"], _read(f, str(path))

    # read once into memory (a file larger than its datasets' limit allows is refused first), then in a forked
    # child before here (hdf5_probe: the HDF5 library loops for ever on some damaged files; any exception h5py
    # raises on a damaged file is a ModelLoadError naming it, never an internal error)
    data = hdf5_probe.read_bytes(str(path), 2 * limits.MAX_ARTIFACT_BYTES + (64 << 20), "artifact")
    try:
        stored, parts = hdf5_probe.read_checked(data, read, "artifact", lead="the artifact is damaged", hint=_HINT)
    except ModelLoadError as err:
        raise err.at(str(path))
    _check_digest(stored, _digest(parts), path)
    doc = parts["doc"]
    try:
        provenance = {k: json.loads(v) for k, v in parts["provenance"].items()}
        tol = None if parts["ann_tolerance"] is None else json.loads(parts["ann_tolerance"])
        if not (tol is None or isinstance(tol, (int, float))):
            raise ValueError(f"ann_tolerance is {tol!r}, not a number")
    except ValueError as exc:
        raise ModelLoadError(f"the artifact is damaged ({exc})", file=path, hint=_HINT) from None
    art = Artifact(graph=Graph.from_saved(doc, parts["arrays"], path), inputs=parts["inputs"],
                   ann_outputs=parts["ann_outputs"], ann_reference=parts["ann_reference"],
                   snn_outputs=parts["snn_outputs"], provenance=provenance, ann_tolerance=tol)
    if art.graph.schedule is None:
        raise ModelLoadError("the artifact's graph is not converted (it has no schedule)", file=path)
    problem = _reference_problem(art.inputs, art.ann_outputs, art.snn_outputs, art.ann_tolerance)
    if problem:
        raise ModelLoadError(f"the artifact's reference data is invalid: {problem}", file=path, hint=_HINT)
    return art


def _read(f, path: str) -> dict[str, Any]:
    """Every part of the open artifact ``f`` the digest covers, read as stored, after checking the declared
    size of all its datasets against limits.MAX_ARTIFACT_BYTES (h5py allocates a dataset's declared shape on
    reading it)."""
    import h5py

    g, r = f["graph"], f["reference"]
    datasets = {ds.name: ds for ds in g.values()}
    datasets.update({r[k].name: r[k] for k in ("inputs", "snn_outputs", "ann_outputs") if k in r})
    total = 0
    for name, ds in datasets.items():
        if not isinstance(ds, h5py.Dataset) or ds.shape is None or ds.dtype.kind not in "biuf":
            raise ModelLoadError(f"the artifact is damaged: {name} is not a numeric array", file=path, hint=_HINT)
        total += int(ds.size) * ds.dtype.itemsize
        if total > limits.MAX_ARTIFACT_BYTES:
            raise ModelLoadError(f"the artifact declares {int(ds.size):,} values in {name} ({total:.3g} bytes so far), "
                                 f"above the limit of {limits.MAX_ARTIFACT_BYTES:,} bytes "
                                 "(neurocompile.limits.MAX_ARTIFACT_BYTES); it is not read", file=path,
                                 hint="A damaged or foreign file; export it again")
    try:
        doc = json.loads(g.attrs["doc"])
    except ValueError as exc:
        raise ModelLoadError(f"the artifact's graph document is damaged (not JSON: {exc})", file=path,
                             hint=_HINT) from None
    if not isinstance(doc, dict):
        raise ModelLoadError("the artifact's graph document is damaged (not a JSON object)", file=path, hint=_HINT)
    arrays = {}
    for ds in g.values():
        key = str(ds.attrs["key"])
        if key in arrays:
            raise ModelLoadError(f"the artifact is damaged: parameter {key!r} is stored twice", file=path, hint=_HINT)
        arrays[key] = ds[()]
    return {"doc": doc, "arrays": arrays, "provenance": {str(k): str(v) for k, v in f["provenance"].attrs.items()},
            "ann_reference": str(r.attrs["ann_reference"]), "inputs": r["inputs"][()],
            "snn_outputs": r["snn_outputs"][()], "ann_outputs": r["ann_outputs"][()] if "ann_outputs" in r else None,
            "ann_tolerance": str(r.attrs["ann_tolerance"]) if "ann_tolerance" in r.attrs else None}


def _digest(parts: dict[str, Any]) -> dict[str, Any]:
    """SHA-256 of each part, named as an error names it, and of all of them together. Arrays are hashed with
    their dtype and shape; JSON structures in a canonical form (sorted keys), so the digest is of the content."""
    def text(obj: Any) -> bytes:
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    def array(a: np.ndarray) -> bytes:
        a = np.asarray(a)
        return text({"dtype": a.dtype.str, "shape": list(a.shape)}) + b"\0" + np.ascontiguousarray(a).tobytes()

    doc = dict(parts["doc"])
    schedule = doc.pop("schedule", None)
    data = {"the graph document": text(doc), "the schedule": text(schedule),
            "the provenance": text(parts["provenance"]), "the ANN reference's name": text(parts["ann_reference"]),
            "the reference inputs": array(parts["inputs"]), "the stored SNN outputs": array(parts["snn_outputs"]),
            "the stored ANN outputs": None if parts["ann_outputs"] is None else array(parts["ann_outputs"]),
            "the ANN tolerance": text(parts["ann_tolerance"])}
    data.update({f"parameter {k!r}": array(v) for k, v in parts["arrays"].items()})
    digests = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(data.items()) if v is not None}
    return {"algorithm": "sha256", "parts": digests, "total": hashlib.sha256(text(digests)).hexdigest()}


def _check_digest(stored: Any, actual: dict[str, Any], path: str) -> None:
    """Refuse an artifact whose parts differ from the digest recorded at export, naming the parts."""
    try:
        rec = json.loads(stored)
        parts, total = dict(rec["parts"]), str(rec["total"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"the artifact's digest record is damaged ({type(exc).__name__})", file=path,
                             hint=_HINT) from None
    if parts == actual["parts"] and total == actual["total"]:
        return
    def listed(names: list[str]) -> str:
        return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")

    groups = [("changed", [k for k in actual["parts"] if k in parts and parts[k] != actual["parts"][k]]),
              ("missing", [k for k in parts if k not in actual["parts"]]),
              ("not in the digest", [k for k in actual["parts"] if k not in parts])]
    what = "; ".join(f"{label}: {listed(names)}" for label, names in groups if names)
    raise ModelLoadError("the artifact does not match the SHA-256 digest recorded at export ("
                         + (what or "the digest record itself was altered")
                         + "): it was edited or damaged since the export", file=path, hint=_HINT)


def _reference_problem(inputs: np.ndarray, ann: np.ndarray | None, snn: np.ndarray,
                       tolerance: float | None) -> str | None:
    """What is wrong with the reference data, or None: it must hold inputs, as many (finite) outputs as inputs,
    and ANN outputs within ``tolerance`` of the SNN's (when there are ANN outputs)."""
    n = len(inputs) if np.ndim(inputs) else 0
    if n == 0 or np.size(inputs) == 0:
        return f"it holds no reference inputs (shape {np.shape(inputs)})"
    for name, a in (("reference inputs", inputs), ("stored SNN outputs", snn), ("stored ANN outputs", ann)):
        if a is None:
            continue
        if np.shape(a)[:1] != (n,):
            return f"the {name} hold {np.shape(a)[0] if np.ndim(a) else 'no'} samples for {n} reference input(s)"
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.argmax(bad.reshape(n, -1).any(1)))
            return f"the {name} hold {int(bad.sum()):,} non-finite value(s) (NaN or inf), first in sample {first}"
    if ann is None:
        return None
    if np.shape(ann) != np.shape(snn):
        return f"the stored ANN outputs have shape {np.shape(ann)}, the SNN outputs {np.shape(snn)}"
    if tolerance is None or not np.isfinite(tolerance) or tolerance < 0:
        return f"the ANN tolerance is {tolerance!r}, not a non-negative number"
    err = ann_error(ann, snn)
    if err > tolerance:
        worst = int(np.argmax(np.abs(np.asarray(snn, np.float64) - ann).reshape(n, -1).max(1)))
        return (f"the stored ANN and SNN outputs differ by {err:.3g} relative to the largest |ANN output| "
                f"(worst in sample {worst}), above the tolerance {tolerance:.3g} recorded at export")
    return None


def created() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
