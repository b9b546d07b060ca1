"""The importer's handlers of NIR's neurons (Threshold, IF, LIF, CubaLIF; LI, CubaLI, I): each checks its
parameters, discretizes them (:mod:`neurocompile.frontends.nir.discretize`) and adds the IR neuron after its input
gain.

**Leaky integrators as readouts.** An LI, CubaLI or I node becomes the IR's non-spiking ``LI`` op, which sends its
membrane v each step (also to later layers, where it is not the last). A graph output is read out, as every output of
neurocompile, as the mean over the T steps of what reaches it: for an LI output the mean membrane (``SimResult.output``,
what the CLI's predictions and ``--json`` "outputs" are), and ``api.readout_membrane(graph, result)`` gives its
membrane after every step (T x N x ...; the last row is the membrane after the last step, the CLI's "readout" line and
``--json`` "membrane_last"). ``graph.meta["nir"]["readout"]`` names such outputs. snnTorch 1.0.0 maps neither LI nor
CubaLI (its LI-style readout is a Leaky / Synaptic with ``reset_mechanism="none"``, which it exports as a LIF /
CubaLIF with a threshold it never applies). A graph whose neurons are all leaky integrators is refused (no spiking
network to schedule).

**Per-neuron parameters.** NIR gives every neuron parameter as an array (one value, or one per neuron; any shape
that broadcasts to the layer's). Where all its values are equal (what snnTorch writes for a scalar) it is one value
for the layer, an attribute of the IR neuron; where they differ (snnTorch's tensor beta or threshold, per-neuron
tau, tau_syn, tau_mem, r, w_in, v_threshold) the IR neuron holds the derived beta, alpha or threshold as a float64
param of the layer's shape (``ops.Op.per_neuron``: what the reference simulator and Lava's LeakyNeuron /
LeakyIntegrator processes run), and an input gain that differs is a Mul by an array. Each neuron's value follows the
same rule as a layer's (snnTorch's float32 beta per distinct tau); ``meta['nir']['neurons']`` records such a
parameter as its [min, max] under ``per_neuron``. A subtractive reset has no NIR form: snnTorch writes v_reset = 0
for a ``Leaky(reset_mechanism="subtract")`` too, which this file cannot detect; export such nets with
``reset_mechanism="zero"``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from neurocompile.errors import ConversionError, ModelLoadError
from neurocompile.frontends.nir.discretize import GAIN_TOLERANCE, Value, euler, input_gain, one, snntorch_betas, zoh
from neurocompile.frontends.nir.fields import check_param, first_bad, numbers, summary
from neurocompile.ir import Shape
from neurocompile.ir.ops import OPS


class Neurons:
    """Neuron handlers of the importer (:class:`neurocompile.frontends.nir.importer.Importer`), each
    ``(k, node, x, shape) -> the IR tensor of the neuron's output``."""

    # A neuron parameter is one value for the layer (a float) or, where a file's per-neuron values differ within the
    # layer, an array of the layer's shape; the arithmetic below works on both (numpy broadcasting).
    def _values(self, k: str, typ: str, node: Any, field: str, shape: Shape) -> Value:
        """A neuron parameter: its one value (a scalar, or per-neuron values that are all equal, as snnTorch writes a
        scalar), else its per-neuron values as a float64 array of the layer's shape."""
        v = numbers(getattr(node, field), k, typ, field)
        check_param(k, typ, field, v, shape)
        if np.isnan(v).any():
            raise ModelLoadError(f"{field} holds NaN", node=k, op=typ)
        lo, hi = float(v.min()), float(v.max())
        return lo if lo == hi else np.ascontiguousarray(np.broadcast_to(v, tuple(shape)))

    def _zero(self, k: str, typ: str, node: Any, field: str, shape: Shape, what: str) -> None:
        v = getattr(node, field, None)
        if v is None:
            return
        v = numbers(v, k, typ, field)
        check_param(k, typ, field, v, shape)
        if np.any(v != 0):
            raise ConversionError(f"{field} = {float(v.flat[np.flatnonzero(v)[0]]):g} (non-zero): {what}", node=k, op=typ)

    def _gain(self, k: str, typ: str, x: str, gain: Value) -> tuple[str, Value]:
        """``x`` times the input gain g (a Mul node; per neuron where g differs within the layer) unless g is 1 within
        :data:`GAIN_TOLERANCE` for every neuron."""
        g = np.asarray(gain, np.float64)
        if not np.isfinite(g).all():
            raise ConversionError(f"the input gain r·dt/tau = {first_bad(g)!r} is not finite", node=k, op=typ)
        if np.all(np.abs(g - 1.0) <= GAIN_TOLERANCE):
            return x, 1.0
        gain = one(g)
        if np.ndim(gain) == 3 and np.all(gain == gain[:, :1, :1]):  # one gain per channel: what Lava's scale map takes
            gain = np.ascontiguousarray(gain[:, :1, :1])
        y = self._add(f"{k}.gain", "Mul", [x], {}, {"const": np.array(gain)}, k, typ)
        self.out.nodes[y].params["const"] = np.array(gain, np.float64)  # kept in float64: not rounded to float32
        return y, gain

    def _cell(self, k: str, typ: str, op: str, x: str, values: dict[str, Value], gain: Value, record: dict) -> str:
        """The IR neuron ``op`` after the input gain: its parameters ``values`` are attributes where they are one
        value for the layer and float64 params (its ``per_neuron`` form) where they differ. Recorded in
        ``meta['nir']['neurons']`` (a per-neuron parameter as its range)."""
        x, used = self._gain(k, typ, x, gain)
        attrs = {f: float(v) for f, v in values.items() if np.ndim(v) == 0}
        varying = {f: v for f, v in values.items() if np.ndim(v)}
        y = self._add(k, op, [x], attrs, {}, k, typ)
        self.out.nodes[y].params.update({f: np.asarray(v, np.float64) for f, v in varying.items()})
        self.neurons[y] = {"nir_type": typ, **record, **attrs, "gain": summary(used),
                           **({"per_neuron": {f: [float(v.min()), float(v.max())] for f, v in varying.items()}}
                              if varying else {}),
                           **({"gain_node": x} if np.ndim(used) or used != 1.0 else {})}
        return y

    def _neuron(self, k: str, typ: str, x: str, beta: Value, threshold: Value, gain: Value, record: dict) -> str:
        if not np.isfinite(threshold).all():
            raise ConversionError(f"v_threshold = {first_bad(threshold)!r} is not finite", node=k, op=typ)
        return self._cell(k, typ, "LIF", x, {"beta": beta, "threshold": threshold}, gain, record)

    def _Threshold(self, k, node, x, shape):
        thr = self._values(k, "Threshold", node, "threshold", shape)
        return self._neuron(k, "Threshold", x, 0.0, thr, 1.0, {"rule": "z = [x > threshold] (LIF with beta 0)"})

    def _IF(self, k, node, x, shape):
        rec = self.exact.get(k, {})
        if rec.get("op") in ("CIF", "IF"):  # the CASC extension: the exact neuron, not the IF approximation
            attrs = rec.get("attrs")
            if not isinstance(attrs, dict):
                raise ModelLoadError("the neurocompile record of this neuron has no attributes", node=k, op="IF")
            missing = [a for a in ("threshold", "levels") if a not in attrs]  # the exporter writes both, always
            if missing:
                raise ModelLoadError(f"the neurocompile record of this {rec['op']} neuron lacks "
                                     f"{' and '.join(missing)}", node=k, op="IF",
                                     hint="The file was damaged or edited; export it again")
            y = self._add(k, rec["op"], [x], attrs, {}, k, "IF")
            self._check_level_neuron(k, node, y, shape)
            return y
        self._zero(k, "IF", node, "v_reset", shape, "neurocompile's neurons reset to 0 (hard reset)")
        r = self._values(k, "IF", node, "r", shape)
        thr = self._values(k, "IF", node, "v_threshold", shape)
        return self._neuron(k, "IF", x, 1.0, thr, one(np.multiply(r, self.dt)),
                            {"r": summary(r), "rule": "v = v + r·dt·I (LIF with beta 1)"})

    def _LIF(self, k, node, x, shape):
        self._zero(k, "LIF", node, "v_leak", shape, "the IR's LIF leaks towards 0 (a leak potential would be a "
                   "constant current (1 - beta)·v_leak, not supported yet)")
        self._zero(k, "LIF", node, "v_reset", shape, "neurocompile's neurons reset to 0 (hard reset)")
        tau = self._values(k, "LIF", node, "tau", shape)
        r = self._values(k, "LIF", node, "r", shape)
        thr = self._values(k, "LIF", node, "v_threshold", shape)
        beta, c, note = self._decay(k, "LIF", tau, "tau", "beta")
        return self._neuron(k, "LIF", x, beta, thr, input_gain(r, c, tau),
                            {"tau": summary(tau), "r": summary(r), **note})

    # -- decays (LIF, CubaLIF; LI, CubaLI) -----------------------------------------------------------------------
    def _decay(self, k: str, typ: str, tau: Value, field: str, key: str) -> tuple[Value, Value, dict]:
        """One compartment ``tau dx/dt = -x + w u`` as a step x[t] = d x[t-1] + w c u[t]: (d, c, what was chosen),
        by the discretization (Euler d = 1 - dt/tau, c = dt/tau, d as snnTorch's float32 value by default; zoh
        d = exp(-dt/tau), c = 1 - d), per neuron where ``tau`` is an array. ``key`` names the decay in neurocompile's
        metadata (``alpha`` for a synaptic current, ``beta`` for a membrane), taken exactly when this file's tau is
        dt / (1 - d)."""
        t = np.asarray(tau, np.float64)
        if not np.all(t > 0):
            raise ConversionError(f"{field} = {first_bad(t, t > 0):g}: a time constant must be positive", node=k,
                                  op=typ, hint=f"snnTorch writes {field} = dt / (1 - {key}): a negative one is a "
                                               f"{key} above 1, which snnTorch's neuron clamps to 1; clamp it before "
                                               "export")
        if self.disc == "zoh":
            return (*zoh(t, self.dt), {})
        d, c = euler(t, self.dt)
        if np.any(d < 0):
            bad = float(t[d < 0].min()) if t.ndim else float(t)
            raise ConversionError(f"forward Euler with dt = {self.dt:.7g} s > {field} = {bad:.7g} s gives {key} = "
                                  f"1 - dt/{field} = {1.0 - self.dt / bad:.6g} < 0 (snnTorch would clamp it to 0: not "
                                  "the ODE)", node=k, op=typ,
                                  hint="Pass a smaller dt (--dt), or the zoh discretization (--discretization zoh)")
        written = self._written(k, key, t)
        if written is not None:
            return written, one(c), {f"{key}_from": "metadata"}
        if self.disc == "snntorch":
            d, exact = snntorch_betas(t, self.dt)
            return d, one(c), {f"{key}_inverts_export": exact}
        return one(d), one(c), {}

    # -- current-based and non-spiking neurons (CubaLIF; LI, CubaLI, I) ----------------------------------------------
    def _cuba_params(self, k: str, typ: str, node: Any, shape: Shape, spiking: bool) -> dict:
        """The checked parameters of a CubaLIF / CubaLI (one value per layer or per neuron); v_leak (and v_reset)
        must be 0."""
        self._zero(k, typ, node, "v_leak", shape, "neurocompile's neurons leak towards 0 (a leak potential would be a "
                   "constant current (1 - beta)·v_leak, not supported yet)")
        fields = ("tau_syn", "tau_mem", "r", "w_in") + (("v_threshold",) if spiking else ())
        if spiking:
            self._zero(k, typ, node, "v_reset", shape, "neurocompile's neurons reset to 0 (hard reset)")
        return {f: self._values(k, typ, node, f, shape) for f in fields}

    def _cuba(self, k: str, typ: str, node: Any, shape: Shape, spiking: bool) -> tuple[dict, Value, dict]:
        """(alpha, beta and, for a CubaLIF, the threshold; the input gain g_syn g_mem; the record) of a CubaLIF /
        CubaLI."""
        p = self._cuba_params(k, typ, node, shape, spiking)
        alpha, c_syn, n_syn = self._decay(k, typ, p["tau_syn"], "tau_syn", "alpha")
        beta, c_mem, n_mem = self._decay(k, typ, p["tau_mem"], "tau_mem", "beta")
        gain = one(np.asarray(input_gain(p["w_in"], c_syn, p["tau_syn"])) * input_gain(p["r"], c_mem, p["tau_mem"]))
        thr = {"threshold": p.pop("v_threshold")} if spiking else {}
        if not np.isfinite(thr.get("threshold", 0.0)).all():
            raise ConversionError(f"v_threshold = {first_bad(thr['threshold'])!r} is not finite", node=k, op=typ)
        return {"alpha": alpha, "beta": beta, **thr}, gain, {**{f: summary(v) for f, v in p.items()}, **n_syn, **n_mem}

    def _CubaLIF(self, k, node, x, shape):
        values, gain, record = self._cuba(k, "CubaLIF", node, shape, spiking=True)
        return self._cell(k, "CubaLIF", "CubaLIF", x, values, gain, record)

    def _integrator(self, k: str, typ: str, x: str, values: dict, gain: Value, record: dict) -> str:
        """An LI node (the IR's non-spiking integrator) after the input gain; its output is its membrane."""
        y = self._cell(k, typ, "LI", x, values, gain, record)
        self.membrane_outputs[y] = k
        return y

    def _LI(self, k, node, x, shape):
        self._zero(k, "LI", node, "v_leak", shape, "neurocompile's LI leaks towards 0 (a leak potential would be a "
                   "constant current (1 - beta)·v_leak, not supported yet)")
        tau, r = self._values(k, "LI", node, "tau", shape), self._values(k, "LI", node, "r", shape)
        beta, c, note = self._decay(k, "LI", tau, "tau", "beta")
        return self._integrator(k, "LI", x, {"beta": beta}, input_gain(r, c, tau),
                                {"tau": summary(tau), "r": summary(r), **note})

    def _CubaLI(self, k, node, x, shape):
        decays, gain, record = self._cuba(k, "CubaLI", node, shape, spiking=False)
        return self._integrator(k, "CubaLI", x, decays, gain, record)

    def _I(self, k, node, x, shape):
        r = self._values(k, "I", node, "r", shape)
        return self._integrator(k, "I", x, {"beta": 1.0}, one(np.multiply(r, self.dt)),
                                {"r": summary(r), "rule": "v = v + r·dt·I (LI with beta 1)"})

    def _check_neurons(self) -> None:
        """A network of leaky integrators only (no spiking neuron) is refused: its T would not be scheduled."""
        if self.membrane_outputs and not any(OPS[n.op].spiking for n in self.out.nodes.values()):
            y = next(iter(self.membrane_outputs))
            k = self.membrane_outputs[y]
            raise ConversionError("the NIR graph has leaky integrators but no spiking neuron: neurocompile runs spiking "
                                  "networks (LI, CubaLI and I as layers or readouts of one)", node=k, op=self.types[k],
                                  hint="Run a purely linear filter in its own tool; add a spiking layer to compile it")


# NIR node type -> its handler
HANDLERS = {"Threshold": Neurons._Threshold, "IF": Neurons._IF, "LIF": Neurons._LIF, "CubaLIF": Neurons._CubaLIF,
            "LI": Neurons._LI, "CubaLI": Neurons._CubaLI, "I": Neurons._I}
