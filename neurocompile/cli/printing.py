"""What the command line writes besides a command's own report: one-line notes on stderr, JSON files, the fixed-point
summary line that several commands print."""
from __future__ import annotations

import json
import sys


def _say(line: str) -> None:
    """One line on stderr; after SIGHUP the terminal may be gone, which must not become a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def _warn(message: str) -> None:
    _say(f"neurocompile: warning: {' '.join(message.split())}")


def fixed_point_summary(report: list[dict]) -> str:
    """One line on a fixed-point conversion: where its weights lost most, exponents and rescales."""
    layers = [r for r in report if r["op"] in ("Conv", "Dense")]
    worst = max(layers, key=lambda r: r["weight_error"], default=None)
    exact = sum(r["weight_error"] == 0 for r in layers)
    line = (f"8-bit weights: {exact} of {len(layers)} layer(s) exact" +
            (f", worst relative weight error {worst['weight_error']:.2%} ({worst['node']})" if worst and
             worst["weight_error"] else ""))
    exps = sum(r["exponent"] > 0 for r in layers)
    rescaled = sorted({r["node"] for r in report if r["rescaled"] and r["op"] not in ("Conv", "Dense")})
    if exps:
        line += f"; {exps} layer(s) use a weight exponent"
    if rescaled:
        line += f"; {len(rescaled)} layer(s) rescaled to keep 24-bit state ({', '.join(rescaled[:3])})"
    return line


def _write_json(path: str, doc: dict) -> None:
    """Write atomically (neurocompile.atomic): a crash or a signal never leaves a half-written file."""
    from neurocompile.atomic import write_atomic

    text = (json.dumps(doc) + "\n").encode()  # serialize first: an unserializable value fails before any file exists
    write_atomic({path: lambda f: f.write(text)})
