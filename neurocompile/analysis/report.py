"""Figures and a self-contained HTML page of an :class:`neurocompile.analysis.evaluate.Evaluation`.

    files = write_plots(ev, "out/")                 # accuracy.png, layer_errors.png, spike_rates.png
    files += write_html(ev, "out/report.html", plots=files)

Figures are drawn with matplotlib's Agg canvas on a ``Figure`` of their own (pyplot's global state and the
session's backend are left alone). Every file is written atomically (:mod:`neurocompile.atomic`).
"""
from __future__ import annotations

import base64
import html
import io
import os
from typing import Any, Sequence

import numpy as np

from neurocompile.atomic import check_folder, write_atomic
from neurocompile.analysis.evaluate import Evaluation
from neurocompile.analysis.evaluate.result import or_dash, pct  # one rule for the text table and the page
from neurocompile.ir import module_name

PLOTS = ("accuracy", "layer_errors", "spike_rates")  # file stems, in page order


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _accuracy(ev: Evaluation) -> bytes | None:
    """Accuracy (or agreement without labels) vs step, the ANN as a line, the IF baseline; logit error below."""
    if not ev.has_labels and not ev.has_ann:
        return None
    steps = np.arange(1, ev.steps + 1)
    panels = 2 if ev.has_ann else 1
    fig = _figure(8, 3.2 * panels)
    ax = fig.add_subplot(panels, 1, 1)
    if ev.has_labels:
        ax.plot(steps, 100 * np.asarray(ev.snn_accuracy), "o-", color="C0", ms=3, label=f"SNN ({ev.neuron})")
        if ev.ann_accuracy is not None:
            ax.axhline(100 * ev.ann_accuracy, color="k", ls="--", lw=1, label=f"ANN {100 * ev.ann_accuracy:.2f} %")
        if ev.baseline and ev.baseline.get("snn_accuracy"):
            ax.plot(steps, 100 * np.asarray(ev.baseline["snn_accuracy"]), "s-", color="C3", ms=3, alpha=0.8,
                    label="IF baseline")
        ax.set_ylabel("accuracy (%)")
    else:
        ax.plot(steps, 100 * np.asarray(ev.agreement), "o-", color="C0", ms=3, label="SNN argmax = ANN")
        if ev.baseline and ev.baseline.get("agreement"):
            ax.plot(steps, 100 * np.asarray(ev.baseline["agreement"]), "s-", color="C3", ms=3, label="IF baseline")
        ax.set_ylabel("agreement with the ANN (%)")
    for t in ev.at if len(ev.at) < ev.steps else ():
        ax.axvline(t, color="0.85", lw=0.8, zorder=0)
    if ev.stable_exact_step is not None:
        ax.axvline(ev.stable_exact_step, color="C2", ls=":", lw=1.2, label=f"logits exact from step {ev.stable_exact_step}")
    ax.set_title(f"{ev.model}: {ev.samples:,} samples, T = {ev.steps}, {ev.precision}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if ev.has_ann:
        ax2 = fig.add_subplot(panels, 1, 2, sharex=ax)
        floor = (ev.tolerance or 1e-12) / 10
        for key, style, lab in (("max_rel_error", "o-", "max"), ("mean_rel_error", "^-", "mean")):
            v = np.maximum(np.asarray(getattr(ev, key)), floor)
            ax2.semilogy(steps, v, style, ms=3, label=f"SNN {lab}")
        if ev.baseline and ev.baseline.get("max_rel_error"):
            ax2.semilogy(steps, np.maximum(np.asarray(ev.baseline["max_rel_error"]), floor), "s-", color="C3", ms=3,
                         alpha=0.8, label="IF baseline max")
        ax2.axhline(ev.tolerance, color="C2", ls=":", lw=1, label=f"tolerance {ev.tolerance:g}")
        if min(ev.mean_rel_error) < floor:
            ax2.text(0.01, 0.03, f"errors below {floor:g} (exact zeros) drawn at {floor:g}", transform=ax2.transAxes,
                     fontsize=8, color="0.4")
        ax2.set_ylabel("|logit error| / max |ANN logit|")
        ax2.grid(alpha=0.3, which="both")
        ax2.legend(loc="upper right", fontsize=8)
        ax2.set_xlabel("time step")
    else:
        ax.set_xlabel("time step")
    fig.tight_layout()
    return _png(fig)


def _layer_errors(ev: Evaluation) -> bytes | None:
    """CASC Fig. 4: per layer, the fraction of neurons with more / less spikes than the ANN's level, per step."""
    layers = [ly for ly in ev.layers if ly.compared]
    if not layers:
        return None
    steps = np.arange(1, ev.steps + 1)
    fig = _figure(8, 6)
    axes = [fig.add_subplot(2, 1, 1), None]
    axes[1] = fig.add_subplot(2, 1, 2, sharex=axes[0])
    for i, ly in enumerate(layers):
        c = f"C{i % 10}"
        lab = f"{ly.module} (settles {ly.settle_step if ly.settle_step is not None else '> T'})"
        axes[0].plot(steps, 100 * np.asarray(ly.more), "o-", color=c, ms=3, label=lab)
        axes[1].plot(steps, 100 * np.asarray(ly.less), "o-", color=c, ms=3, label=lab)
    axes[0].set_ylabel("more spikes (%)")
    axes[1].set_ylabel("less spikes (%)")
    axes[1].set_xlabel("time step")
    axes[0].set_title("neurons whose spike count is above / below the ANN's level")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=-0.5)
        ax.axvline(ev.t_wake, color="0.6", ls="--", lw=0.8)
    axes[0].text(ev.t_wake, axes[0].get_ylim()[1], " end of wake", va="top", fontsize=8, color="0.4")
    axes[1].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _spike_rates(ev: Evaluation) -> bytes | None:
    """Histogram of per-neuron firing rates (spikes per step, averaged over the samples), one outline per layer."""
    layers = [ly for ly in ev.layers if ly.rates is not None and len(ly.rates)]
    if not layers:
        return None
    edges = ev.rate_edges()
    fig = _figure(8, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for i, ly in enumerate(layers):
        ax.hist(np.clip(ly.rates, edges[0], edges[-1]), bins=edges, histtype="step", lw=1.5, color=f"C{i % 10}",
                label=f"{ly.module}: mean {ly.firing_rate:.3f}, dead {100 * ly.dead_fraction:.1f} %")
    ax.set_yscale("log")
    ax.set_xlabel("firing rate (spikes per neuron per step, mean over samples)")
    ax.set_ylabel("neurons")
    ax.set_title("spike-rate histogram per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def figures(evaluation: Evaluation) -> dict[str, bytes]:
    """The figures as PNG bytes, by name (:data:`PLOTS`); a figure with nothing to show is left out."""
    out = {}
    for name, draw in zip(PLOTS, (_accuracy, _layer_errors, _spike_rates)):
        png = draw(evaluation)
        if png is not None:
            out[name] = png
    return out


def plot_paths(out_dir: str) -> dict[str, str]:
    """The file each figure goes to in ``out_dir``, by name (:data:`PLOTS`): the CLI checks them before any work."""
    return {name: os.path.join(out_dir, f"{name}.png") for name in PLOTS}


def write_plots(evaluation: Evaluation, out_dir: str) -> list[str]:
    """Write the figures as ``out_dir/<name>.png`` (the folder is created); returns the paths written. The PNGs are
    one atomic group (:func:`neurocompile.atomic.write_atomic`): a failed write leaves none of them, and no folder
    made here."""
    real = check_folder(out_dir)  # OutputPathError for a folder under a file or in /proc, before drawing
    pngs = figures(evaluation)
    names = plot_paths(out_dir)
    paths = {names[k]: v for k, v in pngs.items()}
    made = []  # the folders created here, deepest last, removed again if the write fails
    d = real
    while not os.path.exists(d):
        made.insert(0, d)
        d = os.path.dirname(d)
    os.makedirs(real, exist_ok=True)
    try:
        write_atomic({p: (lambda f, b=b: f.write(b)) for p, b in paths.items()})
    except BaseException:
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                break
        raise
    return list(paths)


# ----------------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
tr.ok td { background: #f1faf1; } tr.off td { background: #fff6f0; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
.note { color: #555; font-size: 0.9em; } code { background: #f5f5f5; padding: 0 3px; }
"""


_STEP_HEAD = {"step": "step", "snn_accuracy": "SNN accuracy", "agreement": "agreement",
              "max_rel_error": "max rel. error", "mean_rel_error": "mean rel. error",
              "layers_settled": "layers settled", "first_layer_off": "first layer off",
              "baseline_accuracy": "IF accuracy", "baseline_agreement": "IF agreement"}  # the page's column names


def _e(v: Any) -> str:
    return html.escape(str(v))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], left: Sequence[int] = (0,),
           classes: Sequence[str] | None = None) -> str:
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i in left else ""
        return f"<{tag}{cls}>{_e(v)}</{tag}>"

    out = ["<table>", "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr>"]
    for k, r in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        out.append(f"<tr{cls}>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)



def render_html(evaluation: Evaluation, plots: Sequence[str] | dict[str, bytes] | None = None) -> str:
    """The page as a string. ``plots``: PNG paths (as :func:`write_plots` returns), PNG bytes by name, or None
    (the figures are drawn here)."""
    ev = evaluation
    images = _images(ev, plots)
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>neurocompile evaluate: {_e(ev.model)}</title>", f"<style>{_CSS}</style></head><body>",
             f"<h1>neurocompile evaluate: <code>{_e(ev.model)}</code></h1>"]
    parts += ["<h2>Summary</h2>", _table(["", "value"], _facts(ev), left=(0, 1))]
    parts += _per_step(ev, images) + _per_layer(ev, images) + _synops(ev)
    if ev.notes:
        parts += ["<h2>Notes</h2>", "<ul>"] + [f"<li>{_e(n)}</li>" for n in ev.notes] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def _images(ev: Evaluation, plots: Sequence[str] | dict[str, bytes] | None) -> dict[str, bytes]:
    """The PNGs to embed, by name: read from the given paths, as given, or drawn here."""
    if plots is None:
        return figures(ev)
    if isinstance(plots, dict):
        return dict(plots)
    images = {}
    for p in plots:
        with open(p, "rb") as f:
            images[os.path.splitext(os.path.basename(p))[0]] = f.read()
    return images


def _facts(ev: Evaluation) -> list[tuple[str, str]]:
    """The summary table's (what, value) rows."""
    s = ev.summary()
    facts = [("samples", f"{ev.samples:,}"), ("time steps T", f"{ev.steps} (wake {ev.t_wake})"),
             ("neurons", ev.neuron), ("precision", ev.precision)]
    if ev.has_labels:
        facts.append(("SNN accuracy at T", pct(ev.accuracy)))
    if ev.has_ann:
        facts += [("ANN accuracy (float64 interpreter)", pct(ev.ann_accuracy)),
                  ("argmax agreement at T", pct(ev.final_agreement)),
                  ("max |logit error| / max |ANN logit| at T", f"{s['max_rel_error']:.3g}"),
                  ("argmax equal for all samples", f"first at step {or_dash(ev.first_argmax_step)}, from step "
                                                   f"{or_dash(ev.stable_argmax_step)} on"),
                  (f"logits equal (rel. err <= {ev.tolerance:g})", f"first at step {or_dash(ev.first_exact_step)}, "
                                                                  f"from step {or_dash(ev.stable_exact_step)} on")]
        if any(ly.compared for ly in ev.layers):
            facts.append(("first layer off at the final step",
                          module_name(ev.first_error_layer) if ev.first_error_layer else "none"))
    else:
        facts.append(("ANN", "none (a spiking student): SNN accuracy and spike statistics only"))
    if ev.synops is not None:
        sy = ev.synops
        facts.append(("synaptic ops per inference", f"{sy['synops']:,.0f} vs the ANN's {sy['ann_macs']:,} MACs "
                                                    f"({sy['samples']} samples)"))
    if ev.baseline is not None and ev.baseline.get("snn_accuracy"):
        facts.append(("IF baseline accuracy at T", pct(ev.baseline["snn_accuracy"][-1])))
    return facts


def _per_step(ev: Evaluation, images: dict[str, bytes]) -> list[str]:
    """The per-step table (a step whose logits equal the ANN's marked ok) and the accuracy figure."""
    head = [_STEP_HEAD[c] for c in ev.step_columns()]
    rows, cls = [], []
    for t in ev.at:
        rows.append(ev.step_row(t))
        err = ev.at_step(t)["max_rel_error"]
        cls.append("ok" if ev.has_ann and err is not None and err <= ev.tolerance else "")
    parts = ["<h2>Per step</h2>", _table(head, rows, classes=cls)]
    if "accuracy" in images:
        parts.append(_img(images["accuracy"], "accuracy and logit error vs time step"))
    return parts


def _per_layer(ev: Evaluation, images: dict[str, bytes]) -> list[str]:
    """The per-layer table (compared layers marked ok or off at T), the more/less table per step, the figures."""
    head = ["layer", "op", "neurons", "settle step", "more @T", "less @T", "spikes/sample +", "spikes/sample -",
            "rate", "neg. spikes", "silent", "dead", "synops/inf.", "ANN MACs"]
    cls = ["" if not ly.compared else "ok" if ly.more[-1] + ly.less[-1] == 0 else "off" for ly in ev.layers]
    parts = ["<h2>Per layer</h2>", _table(head, [ly.row() for ly in ev.layers], left=(0, 1), classes=cls),
             "<p class=\"note\">settle step: the first step from which every neuron's spike count equals the ANN's "
             "quantized level (and stays equal); more/less: fraction of (sample, neuron) pairs above/below it at T; "
             "rate: spikes per neuron per step; silent: (sample, neuron) pairs without a spike; dead: neurons "
             "silent for every sample.</p>"]
    compared = [ly for ly in ev.layers if ly.compared]
    if compared:
        idx = [t - 1 for t in ev.at]
        head = ["step"] + [f"{ly.module} more / less" for ly in compared]
        rows = [[t] + [f"{pct(ly.more[i])} / {pct(ly.less[i])}" for ly in compared] for t, i in zip(ev.at, idx)]
        parts += ["<h3>More / less spikes than the ANN's level, per step</h3>", _table(head, rows)]
    for key, title in (("layer_errors", "per-layer more/less-spike curves"), ("spike_rates", "spike-rate histogram")):
        if key in images:
            parts.append(_img(images[key], title))
    return parts


def _synops(ev: Evaluation) -> list[str]:
    """The estimate's synaptic operations against the ANN's MACs, per block (nothing without an estimate)."""
    if ev.synops is None or not ev.synops.get("rows"):
        return []
    rows = [[r["name"], r["op"], r["kind"], "-" if r["synops"] is None else f"{r['synops']:,.0f}",
             f"{r['ann_macs']:,}", f"{r['ann_adds']:,}"] for r in ev.synops["rows"]]
    sy = ev.synops
    rows.append(["total", "", "", f"{sy['synops']:,.0f}", f"{sy['ann_macs']:,}", f"{sy['ann_adds']:,}"])
    return ["<h2>Synaptic operations vs MACs</h2>",
            _table(["block", "op", "kind", "synops / inference", "ANN MACs", "ANN other ops"], rows, left=(0, 1, 2)),
            f"<p class=\"note\">From neurocompile.analysis.estimate (Loihi 2 model) on {sy['samples']} sample(s) over "
            f"{sy['steps']} steps.</p>"]


def _img(png: bytes, alt: str) -> str:
    return f"<img alt=\"{_e(alt)}\" src=\"data:image/png;base64,{base64.b64encode(png).decode('ascii')}\">"


def write_html(evaluation: Evaluation, path: str, plots: Sequence[str] | dict[str, bytes] | None = None) -> list[str]:
    """Write one self-contained HTML page (figures embedded as base64 PNG data URIs, tables as ``<table>``)
    atomically to ``path``; returns ``[path]``."""
    doc = render_html(evaluation, plots).encode("utf-8")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    write_atomic({path: lambda f: f.write(doc)})
    return [path]


__all__ = ["write_plots", "write_html", "render_html", "figures", "plot_paths", "PLOTS"]
