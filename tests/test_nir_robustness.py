"""NIR files that are damaged, edited or hostile (issue 26): each is read exactly or refused in one paragraph naming
the file and node (exit 1), never an internal error (exit 3), a wrong number or a run out of memory.

Files are built with the nir package and edited at the HDF5 level with h5py. The extension records' attribute values
(gamma, levels, threshold, shift of a CIF) are refused by the op table's attribute rules (``ops.check_attrs``,
which the NIR importer applies to every IR node before it infers a shape, and ``Graph.validate`` at the end).
"""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

import nir
from neurocompile import cli
from neurocompile.errors import ModelLoadError
from neurocompile.frontends.nir import load_nir

DT = 1e-3
T = 6


def _lif(shape, thr=0.5, beta=0.9):
    """A NIR LIF as snnTorch writes one (tau = dt / (1 - beta), r = tau / dt: input gain 1)."""
    tau = DT / (1 - beta)
    return nir.LIF(tau=np.full(shape, tau), r=np.full(shape, tau / DT), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, thr), v_reset=np.zeros(shape))


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(0.6, 0.5, (6, 4)).astype(np.float32),
            "W2": rng.normal(0.4, 0.6, (3, 6)).astype(np.float32),
            "Wd": rng.normal(0.4, 0.6, (3, 6)).astype(np.float32)}


def _net(dead: bool = False, duplicate: bool = False, extra_nodes=None, metadata=None) -> nir.NIRGraph:
    """input(4) -> fc1 -> lif1 -> fc2 -> lif2 -> output; ``dead``: also lif1 -> a_fc -> a_lif (the same shape as the
    output, named to come first) reaching no Output node; ``duplicate``: the edge lif1 -> fc2 twice."""
    w = _weights()
    nodes = {"input": nir.Input(input_type=np.array([4])), "fc1": nir.Affine(w["W1"], np.zeros(6, np.float32)),
             "lif1": _lif(6), "fc2": nir.Affine(w["W2"], np.full(3, 0.2, np.float32)), "lif2": _lif(3),
             "output": nir.Output(output_type=np.array([3]))}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    if dead:
        nodes = {"a_fc": nir.Affine(w["Wd"], np.zeros(3, np.float32)), "a_lif": _lif(3), **nodes}
        edges += [("lif1", "a_fc"), ("a_fc", "a_lif")]
    if duplicate:
        edges.append(("lif1", "fc2"))
    nodes.update(extra_nodes or {})
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {}, type_check=False)


def _write(path, graph) -> str:
    nir.write(str(path), graph, compression=None)
    return str(path)


def _cli(capsys, path, x_path, *extra) -> tuple[int, str]:
    code = cli.main([str(path), "--input", str(x_path), "--steps", str(T), "--dt", str(DT), "--quiet", *extra])
    return code, capsys.readouterr().err


def _x(tmp_path, shape=(3, 4)):
    p = tmp_path / "x.npy"
    np.save(p, np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32))
    return p


def _refused(code: int, err: str, *words: str) -> None:
    """Exit 1 with one paragraph (no traceback) holding every word."""
    assert code == 1, err
    assert err.startswith("neurocompile: error: ") and "Traceback" not in err and err.strip().count("\n") == 0, err
    for w in words:
        assert w in err, (w, err)


# ---- case 1: only NIR Output nodes are graph outputs -----------------------------------------------------------------
def test_dead_branch_is_dropped_and_outputs_come_from_output_nodes_only(tmp_path, capsys):
    """A LIF branch that reaches no Output node (named to sort first, of the output's shape) was reported as a graph
    output and its values replaced the real output's: now it is dropped (listed in meta['nir']['unused']) and the
    run equals the same network without it, in float64."""
    x = _x(tmp_path)
    dead, clean = _write(tmp_path / "dead.nir", _net(dead=True)), _write(tmp_path / "clean.nir", _net())
    g = load_nir(dead, dt=DT, time_steps=T)
    assert g.outputs == ["lif2"] and not {"a_fc", "a_lif"} & set(g.nodes)
    assert g.meta["nir"]["unused"]["nodes"] == {"a_fc": "Affine", "a_lif": "LIF"}
    runs = {}
    for name, path in (("dead", dead), ("clean", clean)):
        code, err = _cli(capsys, path, x, "--exact", "--json", str(tmp_path / f"{name}.json"))
        assert code == 0, err
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert list(runs["dead"]["outputs_by_name"]) == ["lif2"]
    assert runs["dead"]["outputs"] == runs["clean"]["outputs"] == runs["dead"]["outputs_by_name"]["lif2"]
    assert runs["dead"]["spikes"] == runs["clean"]["spikes"] and np.asarray(runs["dead"]["outputs"]).any()


def test_several_output_nodes_come_in_the_files_order(tmp_path, capsys):
    """Two Output nodes: both are outputs, in the file's order of its Output nodes ('a_out' before 'b_out'), although
    'b_out' (after lif1) is reached before 'a_out' (after the second layer, 'y_fc' -> 'y_lif')."""
    w = _weights()
    nodes = {"input": nir.Input(input_type=np.array([4])), "fc1": nir.Affine(w["W1"], np.zeros(6, np.float32)),
             "lif1": _lif(6), "y_fc": nir.Affine(w["W2"], np.full(3, 0.2, np.float32)), "y_lif": _lif(3),
             "a_out": nir.Output(output_type=np.array([3])), "b_out": nir.Output(output_type=np.array([6]))}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "y_fc"), ("y_fc", "y_lif"), ("y_lif", "a_out"),
             ("lif1", "b_out")]
    path = _write(tmp_path / "two.nir", nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    g = load_nir(path, dt=DT, time_steps=T)
    assert g.outputs == ["y_lif", "lif1"] and g.meta["nir"]["outputs"] == {"y_lif": "a_out", "lif1": "b_out"}
    code, err = _cli(capsys, path, _x(tmp_path), "--json", str(tmp_path / "o.json"))
    assert code == 0, err
    assert list(json.loads((tmp_path / "o.json").read_text())["outputs_by_name"]) == ["y_lif", "lif1"]


def test_a_graph_without_output_node_is_refused(tmp_path, capsys):
    g = _net()
    del g.nodes["output"]
    g.edges.remove(("lif2", "output"))
    code, err = _cli(capsys, _write(tmp_path / "noout.nir", g), _x(tmp_path))
    _refused(code, err, "noout.nir", "no Output node")


# ---- case 2: neurocompile's extension records, range-checked where read ----------------------------------------------
@pytest.fixture(scope="module")
def casc_file(tmp_path_factory):
    """The digits CQReLU network as neurocompile's NIR extension (CIF neurons in the IF nodes' records)."""
    d = tmp_path_factory.mktemp("casc")
    path = d / "casc.nir"
    assert cli.main(["export", "examples/digits_cqrelu.onnx", "--format", "nir", "-o", str(path)]) == 0
    np.save(d / "x.npy", np.load("examples/digits_test.npy")[:2])
    return path, d / "x.npy"


def _edit_record(src, dst, node, edit) -> str:
    """Copy ``src`` with the 'neurocompile' JSON record of ``node`` (None: the graph's) changed by ``edit(record)``."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        md = f[f"node/nodes/{node}/metadata"] if node else f["node/metadata"]
        rec = json.loads(md["neurocompile"][()])
        edit(rec)
        del md["neurocompile"]
        md["neurocompile"] = json.dumps(rec)
    return str(dst)


@pytest.mark.parametrize("attr,value,words", [
    ("gamma", -1, ["'gamma'", "integer >= 1"]),  # was accepted: logits off by 10.8
    ("gamma", 0, ["'gamma'", "integer >= 1"]),  # was an internal error (ZeroDivisionError)
    ("gamma", 1.5, ["'gamma'", "got 1.5"]),
    ("levels", 2.5, ["'levels'", "got 2.5"]),  # was truncated to 2
    ("levels", "8", ["'levels'"]),
    ("threshold", float("nan"), ["'threshold'", "got nan"]),  # was an internal error
    ("threshold", 0, ["'threshold'", "> 0"]),  # was an internal error
    ("shift", float("nan"), ["'shift'"]),
])
def test_bad_cif_record_is_refused(casc_file, tmp_path, capsys, attr, value, words):
    """The exact CIF neuron a CASC file records (depends on the op table's attribute rules, ops.check_attrs)."""
    src, x = casc_file
    path = _edit_record(src, tmp_path / "t.nir", "2_Floor", lambda r: r["attrs"].__setitem__(attr, value))
    code = cli.main([path, "--input", str(x), "--quiet", "--json", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    _refused(code, err, "t.nir", "node '2_Floor'", "op CIF", *words)
    assert not (tmp_path / "o.json").exists()


def test_cif_record_without_levels_is_refused(casc_file, tmp_path, capsys):
    """A record that lost its levels (the quantization of the exact neuron) was an internal error in the schedule."""
    src, x = casc_file
    path = _edit_record(src, tmp_path / "t.nir", "5_Floor", lambda r: r.__setitem__("attrs", {"threshold": 1.0}))
    code, err = cli.main([path, "--input", str(x), "--quiet"]), capsys.readouterr().err
    _refused(code, err, "t.nir", "node '5_Floor'", "lacks levels")


def test_untouched_cif_record_still_runs(casc_file, tmp_path, capsys):
    src, x = casc_file
    assert cli.main([str(src), "--input", str(x), "--quiet"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("key,value,words", [
    ("steps", 2.5, ["steps = 2.5", "integer"]),
    ("t_wake", 0, ["t_wake = 0"]),
    ("steps", "16", ["steps = '16'"]),
    ("dt", -1e-4, ["dt = -0.0001", "positive"]),
    ("dt", True, ["dt = True"]),
    ("kind", "other", ["kind = 'other'"]),
])
def test_bad_graph_record_is_refused(casc_file, tmp_path, capsys, key, value, words):
    src, x = casc_file
    path = _edit_record(src, tmp_path / "g.nir", None, lambda r: r.__setitem__(key, value))
    code, err = cli.main([path, "--input", str(x), "--quiet"]), capsys.readouterr().err
    _refused(code, err, "g.nir", "extension record", *words)


def test_student_record_time_steps_must_be_an_integer(tmp_path):
    record = {"format": "neurocompile-nir/1", "kind": "student", "dt": DT, "time_steps": 2.5}
    meta = {"neurocompile": json.dumps(record)}
    with pytest.raises(ModelLoadError, match=r"time_steps = 2\.5: expected an integer") as e:
        load_nir(_write(tmp_path / "s.nir", _net(metadata=meta)))
    assert "s.nir" in str(e.value)
    meta = {"neurocompile": json.dumps({**record, "time_steps": 5})}
    assert load_nir(_write(tmp_path / "ok.nir", _net(metadata=meta))).meta["time_steps"] == 5


# ---- NIR parameters, range-checked where read ----------------------------------------------------------------------
def _edit(src, dst, node, field, value) -> str:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        n = f[f"node/nodes/{node}"]
        del n[field]
        n[field] = value
    return str(dst)


@pytest.mark.parametrize("node,field,value,words", [
    ("lif2", "v_threshold", np.full(3, np.nan), ["v_threshold holds NaN"]),
    ("lif2", "v_threshold", np.full(3, np.inf), ["v_threshold", "not finite"]),
    ("lif2", "tau", np.full(3, -1e-3), ["tau = -0.001", "positive"]),
    ("lif2", "tau", np.full(3, np.nan), ["tau holds NaN"]),
    ("fc2", "weight", np.full((3, 6), np.nan, np.float32), ["non-finite"]),
    ("input", "shape", np.array([4.5]), ["declared shape [4.5]", "integer"]),
    ("input", "shape", np.array([10**5, 10**5]), ["MAX_FILE_ARRAY_ELEMENTS"]),
])
def test_bad_nir_parameter_is_refused(tmp_path, capsys, node, field, value, words):
    path = _edit(_write(tmp_path / "src.nir", _net()), tmp_path / "p.nir", node, field, value)
    code, err = _cli(capsys, path, _x(tmp_path))
    _refused(code, err, "p.nir", f"node '{node}'", *words)


def _conv_net() -> nir.NIRGraph:
    w = np.random.default_rng(0).normal(0.3, 0.5, (2, 1, 3, 3)).astype(np.float32)
    nodes = {"input": nir.Input(input_type=np.array([1, 6, 6])),
             "conv": nir.Conv2d(input_shape=(6, 6), weight=w, stride=1, padding=1, dilation=1, groups=1,
                                bias=np.zeros(2, np.float32)),
             "lif": _lif((2, 6, 6)), "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                           padding=np.array([0, 0])),
             "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([2, 3, 3])}),
             "output": nir.Output(output_type=np.array([18]))}
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("node,field,value,words", [
    ("conv", "stride", np.array([0, 0]), ["stride [0, 0]", ">= 1"]),  # was an internal error (OverflowError in nir)
    ("conv", "stride", np.array([1.5, 1.5]), ["stride [1.5, 1.5]", "integer"]),
    ("conv", "dilation", np.array([0, 1]), ["dilation [0, 1]", ">= 1"]),
    ("conv", "padding", np.array([-1, -1]), ["padding [-1, -1]", ">= 0"]),
    ("conv", "groups", np.array(0), ["groups 0", ">= 1"]),
    ("pool", "kernel_size", np.array([0, 2]), ["kernel_size [0, 2]", ">= 1"]),
    ("pool", "kernel_size", np.array([10**6, 10**6]), ["kernel_size [1000000, 1000000] exceeds"]),
    ("flat", "start_dim", np.array(0.5), ["start_dim 0.5: expected an integer"]),
])
def test_bad_conv_or_pool_geometry_is_refused(tmp_path, capsys, node, field, value, words):
    path = _edit(_write(tmp_path / "src.nir", _conv_net()), tmp_path / "c.nir", node, field, value)
    x = _x(tmp_path, (2, 1, 6, 6))
    assert _cli(capsys, tmp_path / "src.nir", x)[0] == 0
    code, err = _cli(capsys, path, x)
    _refused(code, err, "c.nir", f"node '{node}'", *words)


def test_infinite_delay_is_refused(tmp_path, capsys):
    g = _net(extra_nodes={"delay": nir.Delay(delay=np.full(3, 2 * DT))})
    g.edges.remove(("lif2", "output"))
    g.edges += [("lif2", "delay"), ("delay", "output")]
    path = _edit(_write(tmp_path / "src.nir", g), tmp_path / "d.nir", "delay", "delay", np.full(3, np.inf))
    _refused(*_cli(capsys, path, _x(tmp_path)), "d.nir", "node 'delay'", "infinite")


# ---- case 3: names, links and edges --------------------------------------------------------------------------------
def test_node_name_that_is_not_utf8_is_refused(tmp_path, capsys):
    path = shutil.copy(_write(tmp_path / "src.nir", _net()), tmp_path / "u.nir")
    with h5py.File(path, "r+") as f:  # was an internal error (UnicodeDecodeError inside nir's hdf2dict)
        f["node/nodes"].move("lif1", b"lif\xff1")
    _refused(*_cli(capsys, path, _x(tmp_path)), "u.nir", "not valid UTF-8", "lif\\xff1")


def test_string_that_is_not_utf8_is_refused(tmp_path, capsys):
    path = shutil.copy(_write(tmp_path / "src.nir", _net()), tmp_path / "s.nir")
    with h5py.File(path, "r+") as f:
        del f["node/nodes/lif1/type"]
        f["node/nodes/lif1/type"] = np.bytes_(b"LI\xffF")
    _refused(*_cli(capsys, path, _x(tmp_path)), "s.nir", "/node/nodes/lif1/type", "not valid UTF-8")


def test_links_and_cycles_in_the_hdf5_file_are_refused(tmp_path, capsys):
    src = _write(tmp_path / "src.nir", _net())
    soft = shutil.copy(src, tmp_path / "soft.nir")
    with h5py.File(soft, "r+") as f:
        f["node/nodes/lif1/extra"] = h5py.SoftLink("/node")
    _refused(*_cli(capsys, soft, _x(tmp_path)), "soft.nir", "SoftLink")
    cyc = shutil.copy(src, tmp_path / "cycle.nir")
    with h5py.File(cyc, "r+") as f:  # a hard link to a parent group: nir's hdf2dict would recurse for ever
        f["node/nodes/lif1/metadata"] = f["node"]
    _refused(*_cli(capsys, cyc, _x(tmp_path)), "cycle.nir", "linked from two places")


def _replace(path, value):
    def edit(f):
        del f[path]
        f[path] = value
    return edit


@pytest.mark.parametrize("edit,words", [
    (_replace("node/nodes", np.zeros(3)), ["'nodes' is no group"]),
    (_replace("node/nodes/lif1/type", np.array([-1, 5, 7])), ["node 'lif1'", "'type' is [-1, 5, 7], not a string"]),
    (_replace("node/type", np.array([1, 2])), ["a single [1, 2] node"]),
    (lambda f: f["node/nodes/lif1"].create_dataset("metadata", data=np.zeros(3)),
     ["node 'lif1'", "'metadata' is no group"]),
    (_replace("node/nodes/fc2/bias", np.bytes_(b"abc")), ["node 'fc2'", "bias 'abc' is not an array of numbers"]),
])
def test_damaged_structure_is_refused(tmp_path, capsys, edit, words):
    """Fields of the wrong kind (a dataset for a group, numbers for a string and back) were internal errors."""
    path = shutil.copy(_write(tmp_path / "src.nir", _net()), tmp_path / "d.nir")
    with h5py.File(path, "r+") as f:
        edit(f)
    _refused(*_cli(capsys, path, _x(tmp_path)), "d.nir", *words)


def test_duplicate_edge_is_refused(tmp_path, capsys):
    """NIR's edges are a set (nir's validate_structure refuses a repeated one). neurocompile summed the input twice on
    the reference and Lava failed with its own error; now both refuse it before any run."""
    path = _write(tmp_path / "dup.nir", _net(duplicate=True))
    x = _x(tmp_path)
    for target in ("reference", "lava-sim"):
        _refused(*_cli(capsys, path, x, "--target", target), "dup.nir", "'lif1' -> 'fc2' is given twice", "node 'fc2'")


# ---- case 4: memory ------------------------------------------------------------------------------------------------
def test_huge_lazily_allocated_dataset_is_refused_before_reading(tmp_path, capsys):
    """A dataset declared with 1e11 float32 elements and no data (h5py creates it instantly; the file stays small) grew
    the CLI to 23 GB until the kernel killed it: now its declared size is checked before it is read."""
    path = shutil.copy(_write(tmp_path / "src.nir", _net()), tmp_path / "huge.nir")
    with h5py.File(path, "r+") as f:
        del f["node/nodes/fc1/weight"]
        f["node/nodes/fc1"].create_dataset("weight", shape=(100_000, 1_000_000), dtype="f4")
    assert (tmp_path / "huge.nir").stat().st_size < 10**6
    _refused(*_cli(capsys, path, _x(tmp_path)), "huge.nir", "/node/nodes/fc1/weight", "100,000,000,000 elements",
             "neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS")


def test_the_limit_counts_all_datasets_together(tmp_path, monkeypatch):
    """Many datasets each under the limit are refused once their sum passes it (the limit is on the file)."""
    from neurocompile import limits

    path = _write(tmp_path / "src.nir", _net())
    assert load_nir(path, dt=DT, time_steps=T)
    monkeypatch.setattr(limits, "MAX_FILE_ARRAY_ELEMENTS", 40)  # each array of the file has at most 24 elements
    with pytest.raises(ModelLoadError, match="MAX_FILE_ARRAY_ELEMENTS"):
        load_nir(path, dt=DT, time_steps=T)


# ---- fields the extension's record supersedes: still checked, and must agree with the record ----------------------
def _edit_casc(casc_file, tmp_path, node, field, value):
    src, x = casc_file
    return _edit(src, tmp_path / "e.nir", node, field, value), x


@pytest.mark.parametrize("node,field,value,words", [
    # a Conv2d's own bias beside its gated bias was ignored: NaN (or any value) passed
    ("0_Conv", "bias", np.full(16, np.nan, np.float32), ["own bias holds nan", "gated bias"]),
    ("0_Conv", "bias", np.full(16, 0.5, np.float32), ["own bias holds 0.5", "gated bias"]),
    # an IF whose record makes it a CIF: r, v_threshold and v_reset were ignored (inf passed)
    ("9_Floor", "r", np.full((32, 4, 4), np.inf), ["r holds inf", "CIF"]),
    ("9_Floor", "r", np.full((32, 4, 4), 2.0), ["r holds 2.0", "CIF"]),
    ("2_Floor", "v_reset", np.full((16, 8, 8), np.nan), ["v_reset holds nan"]),
    ("9_Floor", "v_threshold", np.full((32, 4, 4), 0.25), ["v_threshold holds 0.25"]),
    # the amplitude Scale (a pass-through: the IR neuron sends its amplitude) was never read
    ("2_Floor.amplitude", "scale", np.full((16, 8, 8), np.nan, np.float32), ["scale holds NaN"]),
    ("2_Floor.amplitude", "scale", np.full((16, 8, 8), 3.0, np.float32), ["amplitude Scale holds 3.0"]),
    # the gated bias branch's own (zero) bias field
    ("3_Conv.bias", "bias", np.full(32, np.inf, np.float32), ["gated bias's bias holds inf"]),
    # a wake gate Input (dropped on import) with a NaN / -inf shape: accepted (fuzz_cli --kind nir, seed 1)
    ("wake_1x8x8", "shape", np.array([1.0, np.nan, 8.0]), ["wake gate's", "holds NaN"]),
    ("wake_1", "shape", np.array([-np.inf]), ["wake gate's", "holds -inf"]),
])
def test_a_field_the_record_supersedes_is_still_checked(casc_file, tmp_path, capsys, node, field, value, words):
    path, x = _edit_casc(casc_file, tmp_path, node, field, value)
    code = cli.main([path, "--input", str(x), "--quiet", "--exact", "--json", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    _refused(code, err, "e.nir", f"node '{node.split('.')[0]}'" if node != "2_Floor.amplitude" else "node '2_Floor",
             *words)
    assert not (tmp_path / "o.json").exists()


def test_a_pool_whose_type_contradicts_its_record_is_refused(casc_file, tmp_path, capsys):
    """An AvgPool2d recorded as neurocompile's AvgPool, retyped SumPool2d (same fields), was read as a SumPool2d:
    outputs changed by the window size without a word."""
    path, x = _edit_casc(casc_file, tmp_path, "10_AveragePool", "type", "SumPool2d")
    code, err = cli.main([path, "--input", str(x), "--quiet"]), capsys.readouterr().err
    _refused(code, err, "e.nir", "node '10_AveragePool'", "op SumPool2d", "'AvgPool'", "contradicts its record")


def test_an_infinite_time_constant_stays_accepted_but_an_infinite_gain_alone_is_not(tmp_path, capsys):
    """+inf is meaningful for a time constant (no leak; snnTorch writes tau = r = inf then), not for r beside a
    finite tau."""
    src = _write(tmp_path / "src.nir", _net())
    path = _edit(src, tmp_path / "p.nir", "lif2", "r", np.full(3, np.inf))
    code, err = _cli(capsys, path, _x(tmp_path))
    _refused(code, err, "p.nir", "node 'lif2'")
    path = _edit(path, tmp_path / "q.nir", "lif2", "tau", np.full(3, np.inf))
    code, err = _cli(capsys, path, _x(tmp_path))
    assert code == 0, err


# ---- damaged HDF5: any h5py exception is a refusal, a loop in the HDF5 library is killed ---------------------------
@pytest.mark.parametrize("exc", [KeyError("Unable to synchronously open object (bad object header message count)"),
                                 RuntimeError("Unable to synchronously check link existence (bad local heap)"),
                                 ValueError("bad"), TypeError("bad"), OSError("bad")])
def test_any_h5py_exception_is_a_damaged_file_refusal(tmp_path, capsys, monkeypatch, exc):
    """h5py raises KeyError, RuntimeError, ... (not only OSError) on damaged files: was an internal error (exit 3)."""
    from neurocompile.frontends.nir import reader as nir_frontend

    def broken(group):
        raise exc

    monkeypatch.setattr(nir_frontend, "_hdf2dict", broken)
    path = _write(tmp_path / "d.nir", _net())
    code, err = _cli(capsys, path, _x(tmp_path))
    _refused(code, err, "d.nir", "damaged HDF5", type(exc).__name__)


def test_real_damaged_files_are_refused_not_internal_errors(tmp_path):
    """The fuzzer's reproducers (a KeyError and a RuntimeError from h5py), read in process."""
    from tests import fuzz_files as FF

    for m in (FF._nir_zeroed_fixed("lif_mlp", "x", 888, 38),
              FF._nir_bytes_fixed("lif_mlp", "x", 572, bytes.fromhex("df0b8d7570cf7e1e3dc3e2"))):
        path = tmp_path / "net.nir"
        path.write_bytes(m.files["net.nir"])
        with pytest.raises(ModelLoadError) as info:
            load_nir(str(path))
        assert "damaged HDF5" in str(info.value) and "net.nir" in str(info.value)


def test_a_file_that_makes_hdf5_loop_is_refused_within_the_timeout(tmp_path, monkeypatch):
    """The HDF5 library loops for ever on this damaged file (C code: no signal stops it): the forked probe is killed
    at the timeout (made 1 s here) and the file refused; this process never enters the loop."""
    import time

    from neurocompile import hdf5_probe
    from tests import fuzz_files as FF

    monkeypatch.setattr(hdf5_probe, "BASE_TIMEOUT_S", 1.0)
    path = tmp_path / "net.nir"
    path.write_bytes(FF._nir_zeroed_fixed("lif_mlp", "x", 1426, 32).files["net.nir"])
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        load_nir(str(path))
    assert time.monotonic() - start < 10
    assert "did not finish within 1 s" in str(info.value) and "net.nir" in str(info.value)


def test_the_probe_kills_a_child_that_does_not_finish_and_passes_errors_through(monkeypatch):
    import io
    import time

    from neurocompile import hdf5_probe

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["a"] = np.arange(3)
        f.attrs["note"] = "x"
    data = buf.getvalue()
    assert list(hdf5_probe.read_checked(data, lambda f: f["a"][()])) == [0, 1, 2]
    monkeypatch.setattr(hdf5_probe, "BASE_TIMEOUT_S", 0.5)
    with pytest.raises(ModelLoadError, match="did not finish within"):
        hdf5_probe.read_checked(data, lambda f: time.sleep(60))
    with pytest.raises(ModelLoadError, match=r"damaged HDF5 file: reading it failed \(RuntimeError: boom\)"):
        hdf5_probe.read_checked(data, lambda f: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(ModelLoadError, match="damaged HDF5 file"):
        hdf5_probe.read_checked(b"not an HDF5 file", lambda f: None)


def test_the_probe_child_runs_no_finalizer_of_the_parents_objects(tmp_path):
    """An at-fork hook that drops an object (targets/lava/run.py forgets its pre-started workers in a child) must not
    run its finalizer in the probe's child: a TemporaryDirectory's removed the parent's Lava job folder (exit 3)."""
    import os
    import tempfile

    from neurocompile import hdf5_probe

    held = [tempfile.TemporaryDirectory(dir=tmp_path)]
    os.register_at_fork(after_in_child=held.clear)  # (stays registered: it clears an empty list from now on)
    folder = held[0].name
    hdf5_probe.read_checked(_bytes_of(_net(), tmp_path), lambda f: f["node"]["type"][()])
    assert os.path.isdir(folder)
    held.pop().cleanup()


def _bytes_of(graph, tmp_path) -> bytes:
    return open(_write(tmp_path / "b.nir", graph), "rb").read()
