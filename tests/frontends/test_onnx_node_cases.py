"""Conformance against onnx's own backend node test cases, generated in memory from onnx.backend.test.case.node.

Every single-node case whose op neurocompile imports is imported and run by the float64 interpreter; the oracle
is the case's expected outputs (float32 data, compared at rel 1e-5). Outcome per case: pass, refused (a clean
NeurocompileError with a reason), wrong (a number differs: a failure) or crash (any other exception: a failure).
Run with -s for the per-op table.

Harness adaptations (the IR needs a leading batch dimension and constant weights): the first graph input is the
data, inputs after it become initializers holding the case's values; a second variant keeps the inputs shaped
like the first (same rank and leading dimension) as data too; a failure of either counts, else a pass does. A
case stamped with an opset newer than neurocompile reads is stamped with the newest one it reads when the op's
inputs and attributes are the same there (those opset bumps only widened element types).
"""
from __future__ import annotations

import collections
import functools
import re
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from neurocompile.ir import interpreter
from neurocompile.errors import NeurocompileError
from neurocompile.frontends.onnx.importer import import_model
from neurocompile.frontends.onnx.checks import MAX_OPSET

OPS = {"Conv", "Gemm", "MatMul", "BatchNormalization", "Relu", "Floor", "Round", "Identity", "Dropout", "Clip",
       "Min", "Max", "Add", "Sub", "Mul", "Div", "AveragePool", "MaxPool", "GlobalAveragePool", "Flatten", "Reshape",
       "Concat", "Constant"}
RTOL = 1e-5
# cases whose expected outputs are written by hand to 4 decimals: compared at the case's own rtol (1e-3)
ROUNDED = {"test_averagepool_2d_ceil_last_window_starts_on_pad"}
WORST = ("crash", "wrong", "pass", "refused")  # how variants combine: any failure counts, then any pass


@functools.lru_cache(maxsize=1)
def _cases() -> tuple:
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators' own overflow / divide warnings
        cases = node_cases.collect_testcases()  # module-global: one collection per process
    return tuple(c for c in cases if len(c.model.graph.node) == 1 and c.model.graph.node[0].op_type in OPS)


def _variant(case, batch_like: bool) -> tuple[onnx.ModelProto, dict, list] | None:
    m = onnx.ModelProto()
    m.CopyFrom(case.model)
    ins, outs = case.data_sets[0]
    op = m.graph.node[0].op_type
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx") and o.version > MAX_OPSET:
            new, old = onnx.defs.get_schema(op, MAX_OPSET), onnx.defs.get_schema(op, o.version)
            if sorted(new.attributes) == sorted(old.attributes) and \
                    [i.name for i in new.inputs] == [i.name for i in old.inputs]:
                o.version = MAX_OPSET
    g, feeds = m.graph, {}
    graph_inputs = list(g.input)
    del g.input[:]
    for i, (vi, v) in enumerate(zip(graph_inputs, ins)):
        v = np.asarray(v)
        lead = np.shape(ins[0])
        if i == 0 or (batch_like and v.ndim == len(lead) > 0 and v.shape[0] == lead[0]):
            g.input.append(vi)
            feeds[vi.name] = v
        else:
            g.initializer.append(numpy_helper.from_array(v, vi.name))
    if batch_like and len(g.input) == 1:
        return None  # no input is batch-like: the same as the first variant
    return m, feeds, list(outs)


def _run(case, m: onnx.ModelProto, feeds: dict, outs: list) -> tuple[str, str]:
    try:
        g = import_model(m)
        res = interpreter.run(g, feeds, dtype="float64") if feeds else None
    except NeurocompileError as err:
        return ("refused", str(err)) if str(err).strip() else ("crash", "an error without a message")
    except Exception as exc:  # noqa: BLE001 - anything else is a bug
        return "crash", f"{type(exc).__name__}: {exc}"
    if res is None:
        return "crash", "imported a graph without inputs"
    rtol, atol = (case.rtol, case.atol) if case.name in ROUNDED else (RTOL, 0.0)
    for t, want in zip(g.outputs, outs):
        got, want = res[t], np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            return "wrong", f"shape {got.shape}, expected {want.shape}"
        if not np.allclose(got, want, rtol=rtol, atol=atol + RTOL * float(np.abs(want).max(initial=0.0))):
            return "wrong", f"max abs error {np.abs(got - want).max():.3g}"
    return "pass", ""


def _outcome(case) -> tuple[str, str]:
    results = [_run(case, *_variant(case, False))]
    if (v := _variant(case, True)) is not None:
        results.append(_run(case, *v))
    return min(results, key=lambda r: WORST.index(r[0]))


@pytest.fixture(scope="module")
def outcomes() -> dict[str, tuple[str, str, str]]:
    return {c.name: (c.model.graph.node[0].op_type, *_outcome(c)) for c in _cases()}


def test_node_cases_no_wrong_numbers_no_crashes(outcomes):
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for op, kind, _ in outcomes.values():
        table[op][kind] += 1
    print(f"\n{'op':20s} {'pass':>5s} {'refused':>8s} {'wrong':>6s} {'crash':>6s}")
    for op in sorted(table):
        c = table[op]
        print(f"{op:20s} {c['pass']:5d} {c['refused']:8d} {c['wrong']:6d} {c['crash']:6d}")
    reasons = collections.Counter(re.sub(r" \(node .*", "", why) for _, kind, why in outcomes.values()
                                  if kind == "refused")
    print("refusals:\n" + "\n".join(f"  {n:3d} x {why}" for why, n in sorted(reasons.items())))
    bad = {name: (kind, why) for name, (_, kind, why) in outcomes.items() if kind in ("wrong", "crash")}
    assert not bad, "\n".join(f"{name}: {kind}: {why}" for name, (kind, why) in sorted(bad.items()))
    # every op neurocompile imports passes at least one of onnx's cases (Constant alone has no data input)
    assert {op for op, kind, _ in outcomes.values() if kind == "pass"} >= OPS - {"Constant"} - (OPS - set(table))


def test_refusals_name_the_node_and_op(outcomes):
    """An op-level refusal says where: node and op (model-level ones, e.g. element types, name the tensor)."""
    for name, (op, kind, why) in outcomes.items():
        if kind == "refused" and why.startswith("unsupported use of"):
            assert f"op {op}" in why and "node '" in why, (name, why)
