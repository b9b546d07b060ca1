"""A NIR file read into a ``nir.NIRGraph``: through the checked HDF5 reader (sizes, links, UTF-8 checked before
anything is read; damaged HDF5 read in a forked probe), node by node, each node nir cannot build named."""
from __future__ import annotations

from typing import Any

import numpy as np

from neurocompile import hdf5_probe, limits
from neurocompile.errors import ModelLoadError
from neurocompile.frontends.nir.fields import GEOMETRY, as_str, as_array, brief, ints

MAPPED = ("Input", "Output", "NIRGraph", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
          "Flatten", "Delay", "Threshold", "IF", "LIF", "CubaLIF", "LI", "CubaLI", "I")


NOT_YET: tuple[str, ...] = ()  # NIR node types neurocompile reads but cannot map yet


def is_nir(path: str) -> bool:
    """A path names a NIR file (by its extension, as nir.write's users name them)."""
    return str(path).lower().endswith(".nir")


def read_nir(path: str):
    """(nir.NIRGraph, the file's NIR version) by nir's own parsing: what ``nir.read`` does (``hdf2dict``, here
    :func:`_hdf2dict`, then ``dict2NIRNode`` per node), node by node, so a node nir cannot build (``nir.read`` raises a
    bare AssertionError for an unknown type, KeyError for a missing field) is named in the error; and without nir's
    type check, which refuses the scalar neuron parameters snnTorch writes (shape () against a layer's shape):
    :func:`import_nir` checks shapes itself."""
    import nir

    def read(f: Any) -> dict:
        if "node" not in f:
            raise ModelLoadError("the file is HDF5 but not NIR (no 'node' group)", hint="Write the graph with nir.write")
        return _hdf2dict(f)

    # the file is read once into memory (a file larger than its arrays' limit allows is refused first) and read in a
    # forked child before it is read here (hdf5_probe: the HDF5 library loops for ever on some damaged files, and
    # raises any exception type on others)
    data = hdf5_probe.read_bytes(path, 2 * 8 * limits.MAX_FILE_ARRAY_ELEMENTS + (64 << 20), "NIR file")
    root = hdf5_probe.read_checked(data, read, "NIR file", lead="cannot read the file as NIR (damaged HDF5)",
                                   hint="Is it a .nir file written by nir.write, and was it written completely?")
    doc, version = root["node"], root.get("version", "unknown")
    if not isinstance(doc, dict):
        raise ModelLoadError("the file is HDF5 but not NIR ('node' is not a group)",
                             hint="Write the graph with nir.write")
    version = version.decode("utf8", "backslashreplace") if isinstance(version, bytes) else str(version)
    typ = doc.get("type")
    if not isinstance(typ, str) or typ != "NIRGraph":
        shown = repr(typ) if isinstance(typ, str) else brief(typ)
        raise ModelLoadError(f"the file holds a single {shown} node, not a NIRGraph",
                             hint="Write a nir.NIRGraph (e.g. nir.NIRGraph.from_list(...))")
    return _from_dict(doc, "", nir), version


def _hdf2dict(group: Any) -> dict:
    """nir's ``hdf2dict`` (groups as dicts, datasets as their values, byte strings decoded as UTF-8) with what a
    damaged or hostile file needs checked first (ModelLoadError naming the HDF5 path): every dataset's declared size,
    before it is read, against :data:`neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS` in all (h5py creates a declared
    1e11-element dataset instantly, without writing it, and reading it would take the memory); names and strings that
    are not UTF-8 (nir decodes them unchecked); links to other files or objects and objects reached twice (a cycle of
    hard links would recurse for ever), none of which ``nir.write`` writes."""
    import h5py

    seen: set = set()
    total = 0

    def name_of(key: Any, at: str) -> str:
        if isinstance(key, bytes):  # h5py hands back a name that is not UTF-8 as bytes
            try:
                key = key.decode("utf8")
            except UnicodeDecodeError:
                shown = key.decode("utf8", "backslashreplace")
                raise ModelLoadError(f"the HDF5 name '{at}/{shown}' is not valid UTF-8 (NIR names nodes and fields by "
                                     "UTF-8 strings)", node=shown,
                                     hint="Rename it in the program that wrote the file") from None
        return str(key)

    def read(g: Any, at: str) -> dict:
        out: dict = {}
        for raw in g.keys():
            key = name_of(raw, at)
            where = f"{at}/{key}"
            link = g.get(raw, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise ModelLoadError(f"the HDF5 object '{where}' is a {type(link).__name__} (nir.write writes none)")
            item = g[raw]
            if item.id in seen:
                raise ModelLoadError(f"the HDF5 object '{where}' is linked from two places (nir.write writes a tree)")
            seen.add(item.id)
            if isinstance(item, h5py.Group):
                out[key] = read(item, where)
            elif isinstance(item, h5py.Dataset):
                out[key] = value(item, where)
        return out

    def value(d: Any, where: str) -> Any:
        nonlocal total
        # an element wider than 8 bytes (a fixed-length string) counts as itemsize / 8 elements
        size = max(int(d.size or 0), -(-int(d.size or 0) * int(d.dtype.itemsize) // 8))
        total += size
        if total > limits.MAX_FILE_ARRAY_ELEMENTS:
            raise ModelLoadError(f"the HDF5 dataset '{where}' declares {size:,} elements of shape {d.shape}, which "
                                 f"takes the file's arrays over the limit of {limits.MAX_FILE_ARRAY_ELEMENTS:,} "
                                 "elements "
                                 "(neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS); refused before reading it",
                                 hint="Raise the limit in neurocompile/limits.py if the network really is that large")
        try:
            v = d[()]
        except (OSError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"cannot read the HDF5 dataset '{where}' ({exc})") from None
        if isinstance(v, bytes):
            try:
                return v.decode("utf8")
            except UnicodeDecodeError:
                raise ModelLoadError(f"the HDF5 dataset '{where}' holds a string that is not valid UTF-8") from None
        return v

    return read(group, "")


def _from_dict(d: dict, name: str, nir) -> Any:
    typ = d.get("type") if isinstance(d, dict) else None
    if typ is None:
        raise ModelLoadError("malformed NIR node (no 'type')", node=name or None)
    if not isinstance(typ, str):
        raise ModelLoadError(f"malformed NIR node (its 'type' is {brief(typ)}, not a string)", node=name or None)
    if not isinstance(d.get("metadata", {}), dict):
        raise ModelLoadError("malformed NIR node (its 'metadata' is no group)", node=name or None, op=typ)
    if typ == "NIRGraph":
        if "nodes" not in d or "edges" not in d:
            raise ModelLoadError("malformed NIR subgraph (no 'nodes' or 'edges')", node=name or None, op=typ)
        if not isinstance(d["nodes"], dict):
            raise ModelLoadError("malformed NIR subgraph (its 'nodes' is no group)", node=name or None, op=typ)
        prefix = f"{name}." if name else ""
        nodes = {str(k): _from_dict(v, f"{prefix}{k}", nir) for k, v in d["nodes"].items()}
        try:
            edges = [(as_str(a), as_str(b)) for a, b in np.asarray(d["edges"]).reshape(-1, 2)]
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"malformed edge list ({exc})", node=name or None, op=typ) from None
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(d.get("metadata", {})), type_check=False)
    if typ not in MAPPED + NOT_YET:
        raise ModelLoadError(f"unknown NIR node type {typ!r}", node=name, op=str(typ),
                             hint=f"NIR {_nir_version()} defines {', '.join(sorted(MAPPED + NOT_YET))}")
    for field, least in GEOMETRY.items():  # before nir's constructors, which compute shapes with them (stride 0: inf)
        if field in d and not (field == "padding" and as_array(d[field]).dtype.kind in "SUO"):
            ints(d[field], None, name, typ, field, least)
    try:
        return nir.dict2NIRNode(dict(d))
    except (AssertionError, ArithmeticError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ModelLoadError(f"nir cannot build this {typ} node ({detail})", node=name, op=typ,
                             hint="The file's fields for this node are missing or malformed") from None


def _nir_version() -> str:
    try:
        import nir
        return str(nir.__version__)
    except Exception:  # noqa: BLE001
        return ""

