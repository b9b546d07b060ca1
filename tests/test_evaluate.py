"""neurocompile.analysis.evaluate and neurocompile.analysis.report on the bundled digits CNN (and a small LIF student)."""
import base64
import io
import json
import math
import os
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from neurocompile import api
from neurocompile.errors import NeurocompileError
from neurocompile.analysis.evaluate import EXACT_RTOL, FLOAT32_RTOL, evaluate
from neurocompile.analysis.report import render_html, write_html, write_plots
from tests.conftest import ort_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "examples", "digits_cqrelu.onnx")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
    x = np.load(os.path.join(ROOT, "examples", "digits_test.npy"))
    y = np.load(os.path.join(ROOT, "examples", "digits_test_labels.npy"))
    return x, y


@pytest.fixture(scope="module")
def ev(data):
    x, y = data
    return evaluate(MODEL, x, y, baseline=True)


def _close(a, b, path="") -> None:
    """Nested equality; floats to 1e-12 relative (sums over batches in another order)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _close(u, v, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_ann_accuracy_is_onnxruntimes(ev, data):
    x, y = data
    ort = ort_run(MODEL, x)
    assert ev.samples == len(x) and ev.has_ann and ev.has_labels
    assert ev.ann_accuracy == float(np.mean(ort.argmax(1) == y))


def test_snn_equals_ann_at_the_default_T(ev):
    T = api.convert(api.load(MODEL)).schedule.steps
    assert ev.steps == T and ev.at == list(range(1, T + 1)) and len(ev.snn_accuracy) == T
    assert ev.accuracy == ev.ann_accuracy and ev.final_agreement == 1.0
    assert ev.tolerance == EXACT_RTOL and ev.max_rel_error[-1] <= EXACT_RTOL
    assert ev.first_exact_step is not None and ev.first_exact_step <= ev.stable_exact_step <= T
    assert ev.first_argmax_step <= ev.stable_argmax_step <= ev.stable_exact_step
    assert all(a == 1.0 for a in ev.agreement[ev.stable_argmax_step - 1:])
    assert ev.max_rel_error[0] > 0.1  # step 1 is far from the ANN: the measure sees something


def test_per_layer_diagnosis(ev, data):
    x, _ = data
    names = [n.name for n in api.convert(api.load(MODEL)).topo() if n.op == "CIF"]
    assert [ly.name for ly in ev.layers] == names and all(ly.compared for ly in ev.layers)
    assert ev.first_error_layer is None
    for ly in ev.layers:
        assert ly.more[-1] == 0 and ly.less[-1] == 0
        assert ly.settle_step is not None and ly.settle_step <= ev.stable_exact_step
        assert all(m == 0 and le == 0 for m, le in zip(ly.more[ly.settle_step - 1:], ly.less[ly.settle_step - 1:]))
        assert ly.less[0] > 0  # after one step most counts are still building up
        assert 0 < ly.firing_rate <= 1 and 0 <= ly.sparsity < 1 and 0 <= ly.dead_fraction <= ly.sparsity
        assert ly.rates.shape == (ly.neurons,)
        assert math.isclose(ly.rates.mean(), ly.firing_rate, rel_tol=1e-9)
        assert ly.synops > 0 and ly.ann_macs > 0
    res = api.simulate(api.convert(api.load(MODEL)), x, exact=True)
    for ly in ev.layers:
        assert round(ly.spikes_pos * len(x)) == res.spikes[ly.name]["pos"]
        assert round(ly.spikes_neg * len(x)) == res.spikes[ly.name]["neg"]
    assert ev.layers[0].spikes_neg == 0 and ev.layers[-1].neg_fraction > 0  # the first layer never retracts here
    assert ev.synops["synops"] > 0 and ev.synops["ann_macs"] == sum(ly.ann_macs for ly in ev.layers) + \
        sum(r["ann_macs"] for r in ev.synops["rows"] if r["kind"] == "readout")
    s = ev.summary()
    assert s["layer_settle_steps"] == {ly.name: ly.settle_step for ly in ev.layers}


def test_baseline_is_lossy_and_reported(ev):
    b = ev.baseline
    assert b["neuron"] == "if" and b["steps"] == ev.steps and len(b["snn_accuracy"]) == ev.steps
    assert b["max_rel_error"][-1] > 1e-3  # IF is never exact
    assert "IF baseline" in ev.table() and ev.to_dict()["baseline"]["snn_accuracy"]


def test_dataloader_gives_the_same_metrics(ev, data):
    x, y = data
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                         batch_size=32)
    seen = []
    ev2 = evaluate(MODEL, loader, baseline=True, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(32, 100), (64, 100), (96, 100), (100, 100)]
    _close(ev2.to_dict(), ev.to_dict())
    seen.clear()
    evaluate(MODEL, ((xb, yb) for xb, yb in loader), synops=False, at=[16],
             progress=lambda done, total: seen.append((done, total)))  # a generator: total unknown
    assert seen[-1] == (100, None)
    ev3 = evaluate(MODEL, x, y, batch=40, synops=False)  # arrays in batches too
    assert ev3.snn_accuracy == ev.snn_accuracy and ev3.max_rel_error == ev.max_rel_error
    assert [ly.more for ly in ev3.layers] == [ly.more for ly in ev.layers]


def test_reported_steps_and_shorter_runs(ev, data):
    x, y = data
    e = evaluate(MODEL, x, y, at=[16, 4, 8, 8], synops=False)
    assert e.at == [4, 8, 16]
    d = e.to_dict()
    assert [r["step"] for r in d["per_step"]] == [4, 8, 16]
    for r in d["per_step"]:
        assert r["snn_accuracy"] == ev.snn_accuracy[r["step"] - 1]
        assert r["max_rel_error"] == ev.max_rel_error[r["step"] - 1]
    assert all(len(ly["more"]) == 3 for ly in d["layers"])
    lines = e.table().splitlines()
    assert sum(1 for ln in lines if ln.strip().split(" ")[0] in ("4", "8", "16")) == 3
    for bad in ([17], [0], [2.5]):
        with pytest.raises(NeurocompileError):
            evaluate(MODEL, x[:2], at=bad, synops=False)
    e8 = evaluate(MODEL, x, y, steps=8, synops=False)  # a shorter run is the same run cut short
    assert e8.steps == 8 and e8.snn_accuracy == ev.snn_accuracy[:8] and e8.agreement == ev.agreement[:8]
    assert e8.first_exact_step is None and e8.first_error_layer is not None


def test_float32_mode_uses_its_tolerance(data):
    x, y = data
    e = evaluate(MODEL, x, y, exact=False, synops=False, at=[16])
    assert not e.exact and e.tolerance == FLOAT32_RTOL and "float32" in e.precision
    assert 0 < e.max_rel_error[-1] <= FLOAT32_RTOL and e.first_exact_step is not None
    assert e.accuracy == e.ann_accuracy


def test_inputs_and_refusals(data):
    x, y = data
    snn = api.convert(api.load(MODEL))
    e = evaluate(snn, x[:10], y[:10], synops=False)  # a converted graph runs as it is
    assert e.samples == 10 and e.steps == snn.schedule.steps
    e = evaluate(MODEL, x[:10], np.eye(10)[y[:10]], synops=False)  # one-hot labels
    assert e.snn_accuracy == evaluate(MODEL, x[:10], y[:10], synops=False).snn_accuracy
    e = evaluate(MODEL, x[:6], synops=False)  # no labels: agreement only
    assert e.snn_accuracy is None and e.ann_accuracy is None and e.agreement[-1] == 1.0
    with pytest.raises(NeurocompileError, match="labels"):
        evaluate(MODEL, x[:10], y[:9], synops=False)
    with pytest.raises(NeurocompileError, match="converted already"):
        evaluate(snn, x[:2], baseline=True, synops=False)
    with pytest.raises(NeurocompileError, match="conversion options"):
        evaluate(snn, x[:2], gamma=2, synops=False)
    with pytest.raises(NeurocompileError, match="non-finite"):
        evaluate(MODEL, np.full((2, 1, 8, 8), np.nan, np.float32), synops=False)
    with pytest.raises(NeurocompileError, match="batch"):
        evaluate(MODEL, x[:2], batch=0)


def test_lif_student_has_no_ann(tmp_path):
    from neurocompile.torch import export_onnx, spiking_resnet

    torch.manual_seed(0)
    student = spiking_resnet(None, 10, 1, 4, blocks=(1, 1), time_steps=4).eval()
    x = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.5).numpy()
    path = export_onnx(student, torch.tensor(x[:2]), tmp_path / "student.onnx")
    e = evaluate(str(path), x, np.arange(6) % 10, synops=False)
    assert not e.has_ann and e.ann_accuracy is None and e.agreement is None and e.tolerance is None
    assert e.neuron == "lif" and len(e.snn_accuracy) == 4 and e.layers and not any(ly.compared for ly in e.layers)
    assert json.loads(json.dumps(e.to_dict()))["summary"]["ann_accuracy"] is None
    assert "no ANN" in e.table() and "spiking student" in render_html(e)
    files = write_plots(e, str(tmp_path / "plots"))
    assert [os.path.basename(f) for f in files] == ["accuracy.png", "spike_rates.png"]  # no levels to compare
    with pytest.raises(NeurocompileError, match="baseline"):
        evaluate(str(path), x, baseline=True, synops=False)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.rows, self.cells, self.images, self.stack = 0, 0, 0, [], []

    def handle_starttag(self, tag, attrs):
        if tag not in ("meta", "img", "br", "link"):  # void elements have no end tag
            self.stack.append(tag)
        self.tables += tag == "table"
        self.rows += tag == "tr"
        self.cells += tag in ("td", "th")
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        for k, v in attrs:  # self-contained: nothing is loaded from elsewhere
            assert k not in ("src", "href") or v.startswith("data:"), (tag, k, v[:80])
        assert tag not in ("script", "link", "iframe"), tag

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-3:])  # well nested
        self.stack.pop()


def test_plots_and_html(ev, tmp_path):
    import matplotlib.image

    files = write_plots(ev, str(tmp_path / "out"))
    assert [os.path.basename(f) for f in files] == ["accuracy.png", "layer_errors.png", "spike_rates.png"]
    for f in files:
        with open(f, "rb") as fh:
            assert fh.read(8) == PNG
    page = str(tmp_path / "out" / "report.html")
    assert write_html(ev, page, plots=files) == [page]
    assert not [p for p in os.listdir(tmp_path / "out") if p.endswith(".part")]  # atomic: no temp files left
    with open(page, encoding="utf-8") as fh:
        text = fh.read()
    assert text.startswith("<!DOCTYPE html>")
    p = _Page()
    p.feed(text)
    p.close()
    assert p.tables >= 4 and p.rows > ev.steps + len(ev.layers) and not p.stack
    assert len(p.images) == 3
    for src in p.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == PNG
        img = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    for ly in ev.layers:
        assert ly.name in text
    assert render_html(ev).count("data:image/png;base64,") == 3  # figures drawn in memory without files
    d = ev.to_dict()
    assert json.loads(json.dumps(d)) == d and d["summary"]["first_exact_step"] == ev.first_exact_step


def test_cli_evaluate_writes_table_json_plots_and_report(tmp_path):
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "neurocompile.cli", "evaluate", "examples/digits_cqrelu.onnx",
                        "--input", "examples/digits_test.npy", "--labels", "examples/digits_test_labels.npy",
                        "--at", "4,8,16", "--exact", "--json", str(tmp_path / "ev.json"), "--plot",
                        str(tmp_path / "plots"), "--report", str(tmp_path / "ev.html"), "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wrote = [line.split(" ", 1)[1] for line in r.stdout.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 5 and all(os.path.exists(p) for p in wrote)  # 3 PNGs, the page, the JSON: a line each
    d = json.loads((tmp_path / "ev.json").read_text())
    assert json.dumps(d) and "first layer off at the final step: none" in r.stdout
    assert "digits_cqrelu.onnx" in (tmp_path / "ev.html").read_text()


@pytest.mark.parametrize("args,match", [(["--at", "4,x"], "comma-separated step numbers"),
                                        (["--at", "99"], "99")])
def test_cli_evaluate_refusals(args, match):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "neurocompile.cli", "evaluate", "examples/digits_cqrelu.onnx",
                        "--input", "examples/digits_test.npy", "--quiet", *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode in (1, 2) and match in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1


# ----------------------------------------------------------------------------------------------------------
# several processes: torchrun, a shard each, the metrics all-reduced (neurocompile.analysis.distributed)


def test_exact_sums_do_not_depend_on_the_split():
    from fractions import Fraction

    from neurocompile.analysis.evaluate.exact_sums import _ExactSums

    rng = np.random.default_rng(0)
    v = np.abs(rng.standard_normal((3, 600))) * 10.0 ** rng.integers(-310, 300, (3, 600))
    v[0, :4] = 5e-324 * np.arange(1, 5)  # subnormals
    v[1, :2] = 1.7e308                   # a sum that overflows
    v[2] = np.abs(rng.standard_normal(600))
    sums = []
    for parts in (1, 7, 600):
        s = _ExactSums(3)
        for p in np.array_split(v[:, rng.permutation(600)], parts, axis=1):
            s.add(p)
        sums.append(s.values())
    want = []
    for row in v:
        try:
            want.append(float(sum(Fraction(float(a)) for a in row)))
        except OverflowError:
            want.append(math.inf)
    assert all(list(s) == want for s in sums)  # the correctly rounded sum, whatever the order and split


def _same_up_to_float32(a, b, path=""):
    """Two float32 evaluations agree: every count, step and accuracy equal, every logit error within float32
    rounding of the readout (1e-6 of the logit scale: ~2e-7 is the digits CNN's rounding; the math library's
    kernel for a batch shape decides the last bits, so they are never compared for equality)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same_up_to_float32(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list) and "error" not in path:
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _same_up_to_float32(u, v, f"{path}[{i}]")
    elif "error" in path and a is not None:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=path)
    else:
        assert a == b, path


def test_batching_does_not_change_the_numbers(data):
    """Exact mode: identical tables whatever the batching (every decision exact, readouts float64 from the counts).
    The float32 mode: equal up to float32 rounding, as the README promises."""
    x, y = data
    snn = api.convert(api.load(MODEL))
    one = evaluate(snn, x[:7], y[:7], exact=True, synops=False).to_dict()
    fast = evaluate(snn, x[:7], y[:7], exact=False, synops=False).to_dict()
    for b in (1, 3):
        assert evaluate(snn, x[:7], y[:7], exact=True, synops=False, batch=b).to_dict() == one
        _same_up_to_float32(evaluate(snn, x[:7], y[:7], exact=False, synops=False, batch=b).to_dict(), fast)


def test_distributed_helpers_outside_torchrun(monkeypatch, data):
    from neurocompile.analysis import distributed

    for v in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(v, raising=False)
    assert distributed.launched() == (0, 1)
    with distributed.session() as comm:
        assert comm is None  # one process: the plain path, no process group
    with pytest.raises(NeurocompileError, match="torchrun"):
        evaluate(MODEL, data[0][:2], synops=False, distributed=True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.launched() == (1, 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [distributed.local_device(d) for d in ("cuda", "cuda:0", "cpu", None)] == ["cuda:1", "cuda:0", "cpu", None]
    with distributed.session(False) as comm:
        assert comm is None


def _torchrun(args: list[str], nproc: int = 2, timeout: int = 120):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                          "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    # --standalone: a rendezvous on a free localhost port; --monitor-interval: torchrun sees the end in 0.2 s, not 5
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--monitor-interval", "0.2",
                           "--nproc-per-node", str(nproc), "--max-restarts", "0", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_torchrun_cli_equals_one_process(tmp_path):
    import subprocess
    import sys

    # --exact: bit for bit whatever the shards (float32 equals one process only up to rounding: README)
    args = ["evaluate", "examples/digits_cqrelu.onnx", "--input", "examples/digits_test.npy", "--labels",
            "examples/digits_test_labels.npy", "--quiet", "--exact"]
    one = subprocess.run([sys.executable, "-m", "neurocompile", *args, "--json", str(tmp_path / "one.json")],
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=120)
    assert one.returncode == 0, one.stderr
    two = _torchrun(["-m", "neurocompile", *args, "--json", str(tmp_path / "two.json")])
    assert two.returncode == 0, two.stderr[-3000:]
    d1, d2 = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert d2 == d1  # every number identical (the evaluation has no timing fields)
    assert d2["summary"]["samples"] == 100 and d2["summary"]["first_exact_step"] is not None
    # rank 0 alone printed: the same table once, one 'wrote' line; rank 1 printed nothing, not even on stderr
    assert two.stdout == one.stdout.replace(str(tmp_path / "one.json"), str(tmp_path / "two.json"))
    assert two.stdout.count("SNN argmax == ANN for all samples") == 1 and two.stdout.count("wrote ") == 1
    assert "neurocompile" not in two.stderr and "Traceback" not in two.stderr


_SLOW_RANK0 = r'''
import os, sys, time
from neurocompile import api
load_input = api.load_input
def slow(*args, **kw):  # rank 0 finds the error 2 s after rank 1 (a busy machine did this by chance)
    if os.environ.get("RANK") == "0":
        time.sleep(2)
    return load_input(*args, **kw)
api.load_input = slow
from neurocompile.cli import main
sys.exit(main())
'''


def test_torchrun_cli_error_said_once(tmp_path):
    # every rank refuses this input; rank 0 alone says so, and no rank leaves before it has, even where rank 1
    # finds the error first (torchrun then stops rank 0: 'interrupted by SIGTERM' was all it said). An error in
    # one rank's shard only reaches rank 0 through the others: test_torchrun_api_shards.
    x = np.load(os.path.join(ROOT, "examples", "digits_test.npy"))[:20].copy()
    x[5, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "slow_rank0.py").write_text(_SLOW_RANK0)
    r = _torchrun([str(tmp_path / "slow_rank0.py"), "evaluate", "examples/digits_cqrelu.onnx", "--input",
                   str(tmp_path / "x.npy"), "--quiet", "--json", str(tmp_path / "ev.json")])
    assert r.returncode == 1 and r.stdout == "" and not (tmp_path / "ev.json").exists()
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("neurocompile:")]
    assert len(said) == 1 and said[0].startswith("neurocompile: error: input array holds 1 non-finite value(s)")


_RANKS_SCRIPT = r'''
import json, os, sys

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from neurocompile.analysis.distributed import shutdown
from neurocompile.errors import NeurocompileError
from neurocompile.analysis.evaluate import evaluate

root, out = sys.argv[1], sys.argv[2]
model = os.path.join(root, "examples", "digits_cqrelu.onnx")
x = np.load(os.path.join(root, "examples", "digits_test.npy"))[:35]
y = np.load(os.path.join(root, "examples", "digits_test_labels.npy"))[:35]
res = {}
# torchrun's environment: evaluate makes the process group itself; it stays for the next evaluations
res["array"] = evaluate(model, x, y, batch=16, synops_samples=20, exact=False).to_dict()  # shards 18, 17: 16+1
assert dist.is_initialized() and dist.get_world_size() == 2
ds = TensorDataset(torch.tensor(x), torch.tensor(y))
loader = DataLoader(ds, batch_size=8, sampler=DistributedSampler(ds, shuffle=False))  # pads 35 to 36
res["sampler"] = evaluate(model, loader, synops_samples=20).to_dict()
res["batches"] = evaluate(model, (b for b in np.array_split(x, 7)), y, synops=False).to_dict()
res["alone"] = evaluate(model, x[:10], y[:10], synops=False, distributed=False).samples
bad = x[:20].copy()
bad[5, 0, 0, 0] = np.nan
try:
    evaluate(model, bad, synops=False)
except NeurocompileError as err:
    res["failure"] = str(err)
with open(f"{out}.{dist.get_rank()}", "w") as f:
    json.dump(res, f)
shutdown()
assert not dist.is_initialized()
'''


def test_torchrun_api_shards(data, tmp_path):
    x, y = data[0][:35], data[1][:35]
    script = tmp_path / "ranks.py"
    script.write_text(_RANKS_SCRIPT)
    r = _torchrun([str(script), ROOT, str(tmp_path / "res")])
    assert r.returncode == 0, r.stderr[-3000:]
    got = [json.loads((tmp_path / f"res.{k}").read_text()) for k in (0, 1)]
    plain = lambda e: json.loads(json.dumps(e.to_dict()))  # noqa: E731
    one = plain(evaluate(MODEL, x, y, synops_samples=20))
    assert one["summary"]["samples"] == 35 and one["synops"]["samples"] == 20
    fast = plain(evaluate(MODEL, x, y, synops_samples=20, exact=False))
    for res in got:  # every rank returns the whole data set's evaluation, equal to one process's
        _same_up_to_float32(res["array"], fast)  # float32: shards see other batch shapes
        assert res["sampler"] == one  # DistributedSampler's padded duplicate is not counted
        assert res["batches"] == plain(evaluate(MODEL, x, y, synops=False))
        assert res["alone"] == 10
    assert got[0]["failure"] == "on rank 1 of 2: the input holds non-finite values. Inputs must be finite numbers"
    assert got[1]["failure"] == "the input holds non-finite values. Inputs must be finite numbers"
