"""Mutation fuzzing of the CLI over valid ONNX models (issue 12b).

Every mutant of a seed model (tests/fuzz_mutants.py) must either succeed with finite outputs that
agree with onnxruntime (or say its reference was not onnxruntime where onnxruntime refuses), or be
refused with exit 1/2, one paragraph on stderr and no output file left behind. Derandomized (the
`ci` profile); no shrinking, so a failing family reports its first mutant quickly: its description
is the reproducer. benchmarks/fuzz_cli.py runs the same mutants at scale and lists every finding.
"""
import tempfile

import pytest
from hypothesis import HealthCheck, Phase, given, settings

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
