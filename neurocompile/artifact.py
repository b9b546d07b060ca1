"""The deployment artifact: one HDF5 file that holds a converted network and what it takes to verify it.

Layout (``format`` attribute ``neurocompile-artifact/1``):
- ``graph``: the converted IR as JSON text (attribute ``doc``) and its parameters as datasets (attribute
  ``key``: ``node/param``);
  the wake/sleep schedule is part of it;
- ``provenance`` (attributes): source file name and SHA-256, neurocompile version, conversion options,
  creation time;
- ``reference``: a few inputs (``inputs``), the ANN's outputs for them (``ann_outputs``, from the named
  independent reference, attribute ``ann_reference``) and the spiking readout the reference simulator gave
  at export (``snn_outputs``), so ``verify`` can re-run them anywhere without the ONNX file.

Written atomically (a failed export leaves no file). Any damage (not HDF5, truncated, missing parts,
edited values that fail validation) is a one-paragraph ModelLoadError naming the file.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.errors import ModelLoadError
from neurocompile.ir import Graph

FORMAT = "neurocompile-artifact/1"
SUFFIXES = (".h5", ".hdf5")


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


def save(path: str, art: Artifact) -> None:
    """Write ``art`` to ``path`` atomically."""
    import h5py

    from neurocompile.atomic import write_atomic

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
        r.create_dataset("inputs", data=np.asarray(art.inputs, dtype=np.float32))
        r.create_dataset("snn_outputs", data=np.asarray(art.snn_outputs, dtype=np.float64))
        if art.ann_outputs is not None:
            r.create_dataset("ann_outputs", data=np.asarray(art.ann_outputs, dtype=np.float64))
    data = buf.getvalue()
    write_atomic({path: lambda fh: fh.write(data)})


def load(path: str) -> Artifact:
    """Read and check an artifact (ModelLoadError naming the file on any damage)."""
    import h5py

    try:
        f = h5py.File(str(path), "r")
    except FileNotFoundError:
        raise ModelLoadError("no such file", file=path) from None
    except OSError as exc:
        raise ModelLoadError(f"not a readable neurocompile artifact (HDF5: {' '.join(str(exc).split())}); it may be "
                             "truncated or damaged", file=path, hint="Export it again with 'neurocompile export'") from None
    try:
        with f:
            if f.attrs.get("format") != FORMAT:
                nir_file = "node" in f and "version" in f  # what nir.write writes
                raise ModelLoadError(f"not a neurocompile artifact (format {f.attrs.get('format')!r}, expected "
                                     f"{FORMAT!r})" + ("; it holds a NIR graph (nir.write's layout)" if nir_file else ""),
                                     file=path, hint="neurocompile reads NIR files by their extension: name it "
                                                     "net.nir" if nir_file else None)
            g = f["graph"]
            arrays = {str(ds.attrs["key"]): ds[()] for ds in g.values()}
            doc = json.loads(g.attrs["doc"])
            r = f["reference"]
            art = Artifact(graph=None, inputs=r["inputs"][()], ann_outputs=r["ann_outputs"][()] if "ann_outputs" in r
                           else None, ann_reference=str(r.attrs["ann_reference"]), snn_outputs=r["snn_outputs"][()],
                           provenance={k: json.loads(v) for k, v in f["provenance"].attrs.items()})
    except ModelLoadError:
        raise
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"the artifact is damaged ({type(exc).__name__}: {' '.join(str(exc).split())})",
                             file=path, hint="Export it again with 'neurocompile export'") from None
    art.graph = Graph.from_saved(doc, arrays, path)
    if art.graph.schedule is None:
        raise ModelLoadError("the artifact's graph is not converted (it has no schedule)", file=path)
    n = len(art.inputs)
    if art.snn_outputs.shape[:1] != (n,) or (art.ann_outputs is not None and art.ann_outputs.shape[:1] != (n,)):
        raise ModelLoadError("the artifact's reference inputs and outputs differ in number", file=path)
    return art


def created() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
