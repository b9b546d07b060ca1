"""The README's Python blocks run as written, from the repository root, after the bash line that writes net.h5."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKS = re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, "README.md")).read(), re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_python_block_runs(i, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if "net.h5" in BLOCKS[i]:  # the "Deploying on Lava" block reads what its bash block's export wrote
        r = subprocess.run([sys.executable, "-m", "neurocompile.cli", "export", "examples/digits_cqrelu.onnx", "-o",
                            str(tmp_path / "net.h5")], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    code = BLOCKS[i].replace('"net.h5"', repr(str(tmp_path / "net.h5")))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README block {i}:\n{BLOCKS[i]}\n{r.stderr[-3000:]}"


def test_readme_states_every_loihi2_figure_with_its_value_and_source():
    """The README's table of Loihi 2 figures is targets/loihi2/spec.py's: every figure, its value, its source."""
    from neurocompile.targets.loihi2.spec import LOIHI2, LOIHI2_ENERGY, LOIHI2_MESH, LOIHI2_TIMING

    text = open(os.path.join(ROOT, "README.md")).read()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| (.*) \|$", text, re.M)}
    for figures in (LOIHI2, LOIHI2_ENERGY, LOIHI2_TIMING, LOIHI2_MESH):
        for name, f in figures.figures().items():
            assert name in rows, name
            value, _, source = rows[name].split(" | ", 2)
            assert float(value.split()[0].replace(",", "")) == f.value and value.split()[1] == f.unit, name
            assert source == f.source, name
