"""SpikingJelly imported quietly, in either benchmark interpreter (0.0.0.0.14 beside neurocompile on Python 3.10,
2.0 in .venv-bench on Python 3.11): its modules and its version, without the banners its import prints (a Prophesee
toolbox warning on stdout, torch's "No CUDA runtime" or "Triton not available" on stderr)."""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings


def import_spikingjelly(*names: str):
    """(spikingjelly.activation_based.NAME for each name..., version). Raises ImportError."""
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import spikingjelly
        mods = [importlib.import_module(f"spikingjelly.activation_based.{n}") for n in names]
    try:
        from importlib.metadata import version
        ver = version("spikingjelly")
    except Exception:  # noqa: BLE001
        ver = getattr(spikingjelly, "__version__", "?")
    return (*mods, ver)
