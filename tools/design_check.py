"""The redesign's measures (issue 27), from the repository root: exit 1 when one is over its limit.

    python tools/design_check.py            # a table of the measures, then each offence
    python tools/design_check.py --quiet    # only the offences

Product code is ``neurocompile/``, ``passes/`` and ``targets/`` (what installs as the package). Measured:
- modules directly under ``neurocompile/`` (``__init__.py`` not counted): at most 12;
- lines per product file: at most 600;
- lines per function or method (``def`` line to its last line, nested functions inside): at most 80;
- op-kind tests outside the op table (``neurocompile/ir/ops/``): ``isinstance(x, ops.X)`` or with a class imported
  from the op table, a compare of a node's ``.op`` / ``.op_type`` with op names, a compare of a ``role``: at most 15;
- dict access to the schedule, tests and scripts included: ``schedule[...]``, ``sched[...]``, ``schedule.get(...)``:
  none;
- product modules below the facade that import ``neurocompile.api``: none (the command line above it may);
- product packages that ``pyproject.toml`` does not list (a non-editable install would leave them out): none;
- product modules without a docstring that says their job: none.
"""
from __future__ import annotations

import ast
import os
import re
import sys
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCT = ("neurocompile", "passes", "targets")
SCRIPTS = ("tests", "benchmarks", "examples", "tools")
OP_TABLE = os.path.join("neurocompile", "ir", "ops")
ABOVE_API = (os.path.join("neurocompile", "api.py"), os.path.join("neurocompile", "cli"),
             os.path.join("neurocompile", "__main__.py"))
SCHEDULE_NAMES = {"schedule", "sched"}
LIMITS = {"modules": 12, "file_lines": 600, "function_lines": 80, "op_kind_tests": 15, "schedule_dict": 0,
          "api_imports": 0, "unlisted_packages": 0, "no_docstring": 0}
INSTALLED_AS = {"neurocompile": "neurocompile", "passes": "neurocompile.passes", "targets": "neurocompile.targets"}


@dataclass
class Findings:
    modules: list[str] = field(default_factory=list)
    file_lines: list[str] = field(default_factory=list)
    function_lines: list[str] = field(default_factory=list)
    op_kind_tests: list[str] = field(default_factory=list)
    schedule_dict: list[str] = field(default_factory=list)
    api_imports: list[str] = field(default_factory=list)
    unlisted_packages: list[str] = field(default_factory=list)
    no_docstring: list[str] = field(default_factory=list)


def python_files(tops: tuple[str, ...]) -> list[str]:
    out = []
    for top in tops:
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(x for x in dirs if not x.startswith((".", "__pycache__")) and not x.endswith(".egg-info"))
            out += [os.path.relpath(os.path.join(d, f), ROOT) for f in sorted(files) if f.endswith(".py")]
    return out


def _names_from_ops(tree: ast.AST) -> set[str]:
    """Local names bound to the op table: ``ops`` modules and classes imported from it."""
    mods, classes = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module.split(".")[-1] == "ops"
                                                                 or ".ops." in node.module + "."):
            classes |= {a.asname or a.name for a in node.names}
        if isinstance(node, ast.ImportFrom):
            mods |= {a.asname or a.name for a in node.names if a.name == "ops"}
        if isinstance(node, ast.Import):
            mods |= {a.asname or a.name.split(".")[-1] for a in node.names if a.name.endswith(".ops")}
    return mods | {"ops"}, classes


def _is_op_class(expr: ast.AST, mods: set[str], classes: set[str]) -> bool:
    if isinstance(expr, ast.Tuple):
        return any(_is_op_class(e, mods, classes) for e in expr.elts)
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id in mods:
        return expr.attr[:1].isupper() or expr.attr.startswith("_")
    return isinstance(expr, ast.Name) and expr.id in classes and expr.id[:1].isupper()


def _strings(expr: ast.AST) -> bool:
    if isinstance(expr, ast.Constant):
        return isinstance(expr.value, str)
    if isinstance(expr, (ast.Tuple, ast.List, ast.Set)):
        return bool(expr.elts) and all(_strings(e) for e in expr.elts)
    return False


def _is_role(expr: ast.AST) -> bool:
    return (isinstance(expr, ast.Attribute) and expr.attr == "role") or (isinstance(expr, ast.Name)
                                                                           and expr.id == "role")


def _is_op_name(expr: ast.AST) -> bool:
    return isinstance(expr, ast.Attribute) and expr.attr in ("op", "op_type")


def op_kind_tests(path: str, tree: ast.AST) -> list[str]:
    mods, classes = _names_from_ops(tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                and len(node.args) == 2 and _is_op_class(node.args[1], mods, classes)):
            found.append(f"{path}:{node.lineno}: isinstance(..., {ast.unparse(node.args[1])})")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_role(s) for s in sides):
                found.append(f"{path}:{node.lineno}: role compare: {ast.unparse(node)}")
            elif any(_is_op_name(s) for s in sides) and any(_strings(s) for s in sides):
                found.append(f"{path}:{node.lineno}: op name compare: {ast.unparse(node)}")
    return found


def _schedule_aliases(tree: ast.AST) -> set[str]:
    """Names bound to a schedule in this file: ``s = graph.schedule`` (or ``graph.schedule or ...``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            v = node.value.values[0] if isinstance(node.value, ast.BoolOp) else node.value
            if isinstance(v, ast.Attribute) and v.attr == "schedule":
                names.add(node.targets[0].id)
    return names


def schedule_dict(path: str, tree: ast.AST) -> list[str]:
    found = []
    aliases = _schedule_aliases(tree)

    def _is_schedule(expr: ast.AST) -> bool:
        return ((isinstance(expr, ast.Name) and expr.id in SCHEDULE_NAMES | aliases)
                or (isinstance(expr, ast.Attribute) and expr.attr in SCHEDULE_NAMES))

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_schedule(node.value):
            found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and _is_schedule(node.func.value)):
            found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def api_imports(path: str, tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "neurocompile.api" for a in node.names):
            found.append(f"{path}:{node.lineno}: import neurocompile.api")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            absolute = mod if node.level == 0 else None
            if absolute == "neurocompile.api" or (absolute == "neurocompile" and any(a.name == "api" for a in node.names)):
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
            elif node.level and (mod == "api" or mod.endswith(".api") or (not mod and any(a.name == "api"
                                                                                           for a in node.names))):
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)} (relative)")
    return found


def function_lines(path: str, tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > LIMITS["function_lines"]:
                found.append(f"{path}:{node.lineno}: {node.name}() has {n} lines")
    return found


def unlisted_packages() -> list[str]:
    """Product packages (folders with an ``__init__.py``) missing from pyproject.toml's ``packages`` list."""
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    block = re.search(r"^packages\s*=\s*\[(.*?)\]", text, re.S | re.M)
    listed = set(re.findall(r'"([\w.]+)"', block.group(1))) if block else set()
    found = []
    for top, name in INSTALLED_AS.items():
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [x for x in dirs if not x.startswith((".", "__pycache__"))]
            if "__init__.py" in files:
                rel = os.path.relpath(d, os.path.join(ROOT, top))
                pkg = name if rel == "." else name + "." + rel.replace(os.sep, ".")
                if pkg not in listed:
                    found.append(f"{pkg} ({os.path.relpath(d, ROOT)})")
    return sorted(found)


def measure() -> Findings:
    f = Findings()
    top = os.path.join(ROOT, "neurocompile")
    f.modules = sorted(x for x in os.listdir(top) if x.endswith(".py") and x != "__init__.py")
    for path in python_files(PRODUCT):
        src = open(os.path.join(ROOT, path), encoding="utf-8").read()
        tree = ast.parse(src, path)
        lines = src.count("\n") + (not src.endswith("\n") and bool(src))
        if lines > LIMITS["file_lines"]:
            f.file_lines.append(f"{path}: {lines} lines")
        f.function_lines += function_lines(path, tree)
        if not ast.get_docstring(tree):
            f.no_docstring.append(path)
        if not path.startswith(OP_TABLE + os.sep) and path != OP_TABLE + ".py":
            f.op_kind_tests += op_kind_tests(path, tree)
        if not path.startswith(ABOVE_API):
            f.api_imports += api_imports(path, tree)
        f.schedule_dict += schedule_dict(path, tree)
    f.unlisted_packages = unlisted_packages()
    for path in python_files(SCRIPTS):
        if path == os.path.join("tools", "design_check.py"):
            continue
        f.schedule_dict += schedule_dict(path, ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read(), path))
    return f


def main(argv: list[str] | None = None) -> int:
    quiet = "--quiet" in (argv if argv is not None else sys.argv[1:])
    f = measure()
    counts = {"modules": len(f.modules), "file_lines": len(f.file_lines), "function_lines": len(f.function_lines),
              "op_kind_tests": len(f.op_kind_tests), "schedule_dict": len(f.schedule_dict),
              "api_imports": len(f.api_imports), "unlisted_packages": len(f.unlisted_packages),
              "no_docstring": len(f.no_docstring)}
    what = {"modules": "modules directly under neurocompile/", "file_lines": "product files over 600 lines",
            "function_lines": "functions over 80 lines", "op_kind_tests": "op-kind tests outside the op table",
            "schedule_dict": "dict accesses to the schedule", "api_imports": "imports of neurocompile.api below it",
            "unlisted_packages": "packages pyproject.toml does not list",
            "no_docstring": "modules without a docstring"}
    limit = {k: (LIMITS[k] if k in ("modules", "op_kind_tests") else 0) for k in counts}
    bad = [k for k in counts if counts[k] > limit[k]]
    if not quiet:
        print(f"{'measure':<42} {'found':>6} {'limit':>6}")
        for k in counts:
            print(f"{what[k]:<42} {counts[k]:>6} {limit[k]:>6}{'   over' if k in bad else ''}")
    for k in bad if quiet else counts:
        items = f.modules if k == "modules" else getattr(f, k)
        if k in bad or (k == "op_kind_tests" and not quiet):
            print(f"\n{what[k]}:")
            for item in items:
                print(f"  {item}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
