"""tools/design_check.py: the package keeps the layered shape of issue 27, and the checks find what they name."""
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import design_check  # noqa: E402


def _tree(src: str) -> ast.AST:
    return ast.parse(src)


def test_the_package_keeps_its_shape(capsys):
    assert design_check.main(["--quiet"]) == 0, capsys.readouterr().out


def test_op_kind_tests_are_found():
    src = ("from neurocompile.ir import ops\nfrom neurocompile.ir.ops import LIF, op_of\n"
           "a = isinstance(op, ops.Conv)\nb = isinstance(op, (ops.Flatten, ops.Reshape))\nc = isinstance(op, LIF)\n"
           "d = n.op == 'Input'\ne = n.op in ('CIF', 'IF')\nf = op.role == 'affine'\ng = n.op in Group.AFFINE\n"
           "h = isinstance(x, int)\n")
    found = design_check.op_kind_tests("x.py", _tree(src))
    assert [int(f.split(":")[1]) for f in found] == [3, 4, 5, 6, 7, 8]


def test_schedule_dict_access_is_found_through_aliases():
    src = ("T = g.schedule['steps']\ns = snn.schedule\nu = s.get('t_wake')\nv = s.t_wake\nsched = {}\n"
           "w = sched['x']\nq = other['steps']\n")
    found = design_check.schedule_dict("x.py", _tree(src))
    assert [int(f.split(":")[1]) for f in found] == [1, 3, 6]


def test_imports_of_the_facade_are_found():
    src = ("from neurocompile import api\nimport neurocompile.api\nfrom neurocompile.api import load\n"
           "from neurocompile import pipeline\nfrom .. import api\n")
    found = design_check.api_imports("x.py", _tree(src))
    assert [int(f.split(":")[1]) for f in found] == [1, 2, 3, 5]


def test_long_functions_are_found():
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    src = f"def short():\n    return 1\n\n\ndef long():\n{body}\n"
    found = design_check.function_lines("x.py", _tree(src))
    assert len(found) == 1 and "long() has 81 lines" in found[0]
