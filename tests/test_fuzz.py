"""Mutation fuzzing of the CLI over valid ONNX models (issue 12b).

Every mutant of a seed model (tests/fuzz_mutants.py) must either succeed with finite outputs that
agree with onnxruntime (or say its reference was not onnxruntime where onnxruntime refuses), or be
refused with exit 1/2, one paragraph on stderr and no output file left behind. Derandomized (the
`ci` profile); no shrinking, so a failing family reports its first mutant quickly: its description
is the reproducer. benchmarks/fuzz_cli.py runs the same mutants at scale and lists every finding.
The file kinds (artifacts, NIR files, evaluate's inputs: tests/fuzz_files.py, issue 26) follow, each
with its own oracle.
"""
import tempfile

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests import fuzz_files as FF
from tests import fuzz_mutants as F

FAMILIES = {
    "file": ("bytes", "opset", "node_domain"),
    "graph": ("input_shape", "cycle", "duplicate", "outputs", "remove_node"),
    "params": ("initializer", "attribute"),
    "ops": ("operands", "op_swap", "requantize"),
    "inputs": ("input_array", "none"),
}
fuzz = settings(max_examples=120, phases=[Phase.explicit, Phase.generate], deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check(m: F.Mutant, via: str) -> None:
    with tempfile.TemporaryDirectory(prefix="nc-fuzz-") as d:
        kind, detail, out = F.check(m, d, via)
    assert kind not in F.FINDINGS, (f"{kind}: {detail}\n  mutant: {m!r}\n  exit {out.rc} ({out.via}), "
                                    f"stderr: {out.stderr.strip()[-1500:]!r}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_mutants_refused_cleanly_or_match_onnxruntime(family):
    given(m=F.mutants(FAMILIES[family]))(fuzz(lambda m: _check(m, "in-process")))()


@settings(fuzz, max_examples=6)
@given(F.mutants())
def test_mutants_as_a_subprocess(m):
    """Real exit codes and stderr (tracebacks, warnings) of `python -m neurocompile.cli`."""
    _check(m, "subprocess")


def test_seeds_convert_and_match_onnxruntime():
    """The harness itself: every unmutated seed is a success that matches onnxruntime."""
    for seed in F.SEEDS:
        model, x = F._seed_bytes(seed)
        with tempfile.TemporaryDirectory() as d:
            kind, detail, out = F.check(F.Mutant(seed, "none", model, x), d)
        assert kind == "match", (seed, kind, detail, out.stderr)


@pytest.mark.parametrize("m, via", F.known_findings(), ids=lambda v: getattr(v, "desc", v))
def test_earlier_findings(m, via):
    """The mutants behind earlier findings (a product fix is not done until these pass)."""
    _check(m, via)


# ---- artifacts, NIR files and evaluate's inputs (tests/fuzz_files.py, issue 26) ----------------------------------
FILE_FAMILIES = {
    ("artifact", "bytes"): ("bytes", "repack", "benign"),
    ("artifact", "h5"): ("param", "dataset", "key", "reference"),
    ("artifact", "attrs"): ("doc", "provenance", "format"),
    ("nir", "structure"): ("edges", "dead_branch", "swap_type", "rename"),
    ("nir", "params"): ("param", "geometry"),
    ("nir", "meta"): ("metadata", "version", "bytes", "input"),
    ("evaluate", "labels"): ("labels", "label_file"),
    ("evaluate", "inputs"): ("inputs", "options"),
}


def _check_file(m: FF.FileMutant, via: str) -> None:
    with tempfile.TemporaryDirectory(prefix="nc-fuzz-") as d:
        kind, detail, out = FF.check(m, d, via)
    assert kind not in FF.FINDINGS, (f"{kind}: {detail}\n  mutant: {m!r}\n  exit {out.rc} ({out.via}), "
                                     f"stderr: {out.stderr.strip()[-1500:]!r}")


# a family whose derandomized examples hit a finding the product has not fixed yet (remove the mark once it passes)
_OPEN: dict = {}


@pytest.mark.parametrize("kind, family", [pytest.param(*k, id="-".join(k), marks=[pytest.mark.xfail(
    strict=False, reason=_OPEN[k])] if k in _OPEN else []) for k in sorted(FILE_FAMILIES)])
def test_file_mutants_refused_cleanly_or_right(kind, family):
    """Artifacts: refused unless the payload is the seed's; NIR files: refused or finite (and equal to the hand loop
    or onnxruntime where one applies); evaluate: refused unless labels, inputs and options are valid."""
    strategy = FF.mutants(kind, FILE_FAMILIES[kind, family], lava=False)
    given(m=strategy)(settings(fuzz, max_examples=8)(lambda m: _check_file(m, "in-process")))()


@settings(fuzz, max_examples=2)
@given(st.sampled_from(FF.KINDS).flatmap(lambda k: FF.mutants(k, lava=False)))
def test_file_mutants_as_a_subprocess(m):
    """Real exit codes and stderr of `python -m neurocompile.cli` (each run imports torch: a few only)."""
    _check_file(m, "subprocess")


def test_file_seeds_succeed_and_match_their_references():
    """The harness itself: every unmutated seed succeeds, equal to its reference (the seed artifact's payload and
    outputs, the LIF MLP's float64 hand loop in two discretizations, onnxruntime, the labels' accuracy)."""
    for m in FF.seeds():
        with tempfile.TemporaryDirectory() as d:
            kind, detail, out = FF.check(m, d)
        assert kind == "match", (m, kind, detail, out.stderr)


def test_the_payload_digest_sees_every_edit_and_nothing_else():
    """The oracle's payload: one ulp anywhere changes it; a rewritten file or another root group does not."""
    seed = FF.artifact_seed()
    assert FF.payload(seed) == FF.payload(FF._repack(seed)) == \
        FF.payload(FF._h5_edit(seed, lambda f: f.create_group("notes")))
    assert all(FF.payload(build().files["a.h5"]) != FF.payload(seed) for _, build in FF.artifact_edits())


@pytest.mark.parametrize("desc, build", FF.artifact_edits(), ids=[desc for desc, _ in FF.artifact_edits()])
def test_artifact_payload_edits_are_refused(desc, build):
    """Each edit leaves a valid artifact of another network or other reference data: only the digest refuses it."""
    with tempfile.TemporaryDirectory(prefix="nc-fuzz-") as d:
        kind, detail, out = FF.check(build(), d)
    assert kind == "refused_1" and "digest" in out.stderr, (kind, detail, out.stderr)


@pytest.mark.parametrize("desc, via, build", FF.known_findings(), ids=[d for d, _, _ in FF.known_findings()])
def test_earlier_file_findings(desc, via, build):
    """The mutants behind findings of `fuzz_cli.py --kind artifact|nir|evaluate` (XPASS once fixed)."""
    _check_file(build(), via)
