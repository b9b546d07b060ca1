"""``neurocompile verify``: re-run an artifact's reference inputs on the reference simulator and lava-sim against the
readout stored at export."""
from __future__ import annotations

import argparse
import json

from neurocompile.cli.checks import _check_output
from neurocompile.cli.options import _Parser


def _verify_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="neurocompile verify", description="Re-run an artifact's reference inputs on the reference "
                "simulator and on lava-sim: each must reproduce the readout stored at export; the error against "
                "the stored ANN outputs is shown beside it. Exit 0 when every target matches, 1 otherwise.")
    p.add_argument("artifact", help="artifact file written by 'neurocompile export' (.h5)")
    p.add_argument("--target", choices=["reference", "lava-sim", "all"], default="all", help="default: all")
    p.add_argument("--json", dest="json_out", help="write the report as JSON to this file")
    return p


def _verify(a: argparse.Namespace) -> int:
    """Print each target's agreement with the export; exit 0 when all reproduce it, 1 otherwise."""
    from neurocompile import api

    if a.json_out:
        _check_output("--json", a.json_out)
    targets = ("reference", "lava-sim") if a.target == "all" else (a.target,)
    rep = api.verify(a.artifact, targets)
    prov = rep["provenance"]
    print(f"artifact: {a.artifact} (from {prov.get('source')}, sha256 {str(prov.get('source_sha256'))[:12]}..., "
          f"neurocompile {prov.get('neurocompile')}, {prov.get('created')}); {rep['samples']} reference input(s)")
    print("intact: every part matches the SHA-256 digest recorded at export" + (
        "" if rep["stored_ann_error"] is None else f"; stored ANN vs SNN outputs: rel. error "
        f"{rep['stored_ann_error']:.2g} <= tolerance {rep['ann_tolerance']:.2g} recorded at export"))
    for t in targets:
        r = rep[t]
        if "error" in r:
            print(f"{t:<10} cannot run the network: {r['error']}")
            continue
        vs_ann = (f"; vs ANN ({rep['ann_reference']}): max |error| {r['max_abs_error']:.3g} of max |logit| "
                  f"{r['max_abs_logit']:.3g}, argmax agreement {100 * r['argmax_agreement']:.1f} %"
                  if "max_abs_error" in r else "")
        print(f"{t:<10} {'matches' if r['matches_export'] else 'DIFFERS from'} the export "
              f"(max rel. error {r['max_rel_error_vs_export']:.2g}){vs_ann}")
    if a.json_out:
        from neurocompile.atomic import write_atomic

        text = json.dumps(rep, indent=1, default=float).encode()
        write_atomic({a.json_out: lambda f: f.write(text)})
    print("verified" if rep["ok"] else "NOT verified: a target does not reproduce the exported readout")
    return 0 if rep["ok"] else 1
