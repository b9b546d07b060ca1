"""Every Loihi 2 figure and bit width neurocompile uses, each with where it comes from.

Two kinds, read by ``passes/quantize_fixed_point.py``, ``neurocompile/exporters/netx.py`` and
``neurocompile/analysis/estimate``:

- the number formats of Lava's bit-accurate (fixed_pt) models, which are Loihi 2's (public: the lava-nc and
  lava-dl sources): what fixed point stores and what netx writes;
- the capacities and per-op energies the resource estimate divides and multiplies by, each a :class:`Figure`
  whose ``source`` says whether it is a public datasheet figure, an ASSUMPTION (Loihi 1's, where Loihi 2's is not
  public) or an ESTIMATE (Loihi 1's per-op energies).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# ----------------------------------------------------------------------------------------------------------
# number formats (Lava's bit-accurate models; what neurocompile's fixed point and netx export store)

WEIGHT_BITS = 8            # signed weight mantissa of Lava's Dense/Conv (num_weight_bits = 8, science.md)
WEIGHT_MAX = 254           # 8-bit mantissa; lava's Dense truncates the LSB of mixed-sign weights: even, in [-256, 254]
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7  # Loihi's per-layer weight exponent: -8..7 (larger blocks are rescaled)
STATE_BITS = 24            # Loihi 2 membrane / current width (signed)
STATE_MAX = 2 ** (STATE_BITS - 1)
READOUT_BITS = 32          # the readout's running sum: Lava keeps it in int32
LIF_VTH_MAX = 2 ** 17 - 1  # Lava's bit-accurate LIF: 17-bit threshold mantissa, compared as vth << 6
LIF_SHIFT = 6              # ... and its input current enters the state as a_in << 6
DECAY_UNITY = 4096         # 12-bit decays: v <- v * (4096 - dv) >> 12
BIAS_MANT_MAX = 2 ** 12 - 1  # ... and a 13-bit signed bias mantissa (netx applies it with exponent 6: b << 6)
GRADED_SPIKE_BITS = 24     # signed graded-spike payload: Loihi 2's largest (the default of --max-payload-bits)
LAVA_CONV_GROUPS_MAX = 127  # lava's Conv process model (the one netx runs) reads groups as an 8-bit integer

# ----------------------------------------------------------------------------------------------------------
# capacities and energies, with their sources

REFERENCES: dict[str, str] = {
    "intel-loihi2-brief": "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology "
                          "brief, 2021 (text: https://www.scribd.com/document/714638451/; summary: "
                          "https://open-neuromorphic.org/neuromorphic-computing/hardware/loihi-2-intel/)",
    "davies2018": "M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', IEEE Micro "
                  "38(1):82-99, 2018 (Table 2: pre-silicon SDF and SPICE simulation at 0.75 V, 14 nm, 'consistent "
                  "with early post-silicon characterization')",
    "nengo-loihi": "nengo/nengo-loihi, nengo_loihi/block.py: MAX_COMPARTMENTS = 1024, MAX_IN_AXONS = MAX_OUT_AXONS "
                   "= 4096, MAX_SYNAPSE_BITS = 1048576 (the Loihi 1 per-core limits its builder enforces)",
    "horowitz2014": "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, "
                    "0.9 V (as tabulated in https://pmc.ncbi.nlm.nih.gov/articles/PMC8934428/table/T3/)",
    "science.md": "neurocompile's contract (science.md, section 3: Loihi 2 facts from the public Lava documentation; "
                  "Lava's Dense num_weight_bits = 8)",
}
_NOT_PUBLIC = "not public for Loihi 2, ASSUMPTION: the Loihi 1 figure"
_EST = "ESTIMATE: Loihi 1's figure (per-op energies of Loihi 2 are not public)"


@dataclass(frozen=True)
class Figure:
    """One number with its unit and where it comes from."""

    value: float
    unit: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "source": self.source}


@dataclass(frozen=True)
class HardwareLimits:
    """Per-core and per-chip capacities (public upper bounds) the core count divides by."""

    name: str
    cores_per_chip: Figure
    neurons_per_core: Figure
    synaptic_memory_bits_per_core: Figure
    input_axons_per_core: Figure
    output_axons_per_core: Figure   # reported only: fan-out edges per core (not binding for feed-forward layers)
    synapses_per_chip: Figure       # reported only: the chip-level synapse count of the brief
    weight_bits: Figure

    def figures(self) -> dict[str, Figure]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: v.to_dict() for k, v in self.figures().items()}}


class _FigureSet:
    """A dataclass of :class:`Figure` fields: each by name, and as JSON."""

    def figures(self) -> dict[str, Figure]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() for k, v in self.figures().items()}


@dataclass(frozen=True)
class EnergyFigures(_FigureSet):
    """Energy per operation (pJ) for the spiking side and, for comparison, an ANN's arithmetic."""

    synop_pj: Figure
    spike_pj: Figure
    neuron_update_pj: Figure
    neuron_update_active_pj: Figure
    ann_mac_pj: Figure
    ann_add_pj: Figure


LOIHI2 = HardwareLimits(
    name="loihi2",
    cores_per_chip=Figure(128, "cores", "[intel-loihi2-brief]: 128 neuromorphic cores per chip"),
    neurons_per_core=Figure(
        8192, "neurons", "derived upper bound: [intel-loihi2-brief] 'up to 1 million neurons' per chip / 128 cores "
        "(1 M read as 2**20 = 128 x 8192, as Loihi 1's 131,072 = 128 x 1024 [davies2018]); neuron state is "
        "allocated flexibly on Loihi 2, so neurons with more state fit fewer per core"),
    synaptic_memory_bits_per_core=Figure(
        128 * 1024 * 8, "bits", f"{_NOT_PUBLIC}: 128 KB of synaptic state per core ([davies2018] p. 89, mapping "
        "constraint 2; [nengo-loihi] MAX_SYNAPSE_BITS); press reports of the Loihi 2 brief also give 128 KB of "
        "local SRAM per core, now flexibly partitioned"),
    input_axons_per_core=Figure(
        4096, "axons", f"{_NOT_PUBLIC}: 4,096 input axon distribution lists (N_axin) per core ([davies2018] p. 89, "
        "constraint 4; [nengo-loihi] MAX_IN_AXONS)"),
    output_axons_per_core=Figure(
        4096, "axons", f"{_NOT_PUBLIC}: 4,096 core-to-core fan-out edges (N_axout) per core ([davies2018] p. 89, "
        "constraint 3; [nengo-loihi] MAX_OUT_AXONS); reported, not used"),
    synapses_per_chip=Figure(120_000_000, "synapses", "[intel-loihi2-brief]: up to 120 million synapses per chip "
                             "(in its densest formats); reported, not used: 8-bit weights fill the memory first"),
    weight_bits=Figure(WEIGHT_BITS, "bits", "8-bit signed weight mantissa with a per-layer exponent, as neurocompile "
                       "emits Lava's Dense/Conv ([science.md])"),
)

LOIHI2_ENERGY = EnergyFigures(
    synop_pj=Figure(23.6, "pJ", f"{_EST}: [davies2018] Table 2, 'energy per synaptic spike op (min)'"),
    spike_pj=Figure(1.7, "pJ", f"{_EST}: [davies2018] Table 2, 'within-tile spike energy'; a lower bound: each hop "
                    "between tiles adds 3.0 pJ (E-W) or 4.0 pJ (N-S), counted only where the network is placed "
                    "(estimate --placement: hop_pj per mesh hop)"),
    neuron_update_pj=Figure(52.0, "pJ", f"{_EST}: [davies2018] Table 2, 'energy per neuron update (active / "
                            "inactive)' 81 / 52 pJ: each compartment pays the inactive update every step"),
    neuron_update_active_pj=Figure(81.0, "pJ", f"{_EST}: [davies2018] Table 2; paid instead of 52 pJ by an update "
                                   "in which the compartment sends a message (our reading of 'active')"),
    ann_mac_pj=Figure(4.6, "pJ", "[horowitz2014]: 32-bit float multiply 3.7 pJ + add 0.9 pJ"),
    ann_add_pj=Figure(0.9, "pJ", "[horowitz2014]: 32-bit float add 0.9 pJ"),
)

# ----------------------------------------------------------------------------------------------------------
# the mesh and the time per operation: the placement (analysis/estimate/placement.py) and the runtime roofline
# (analysis/estimate/runtime.py) read these; Loihi 2's are not public, so each is Loihi 1's, labelled

_T1 = "ESTIMATE: Loihi 1's figure (not public for Loihi 2)"


@dataclass(frozen=True)
class MeshFigures(_FigureSet):
    """Where cores sit on a chip's mesh and what a message costs to cross it."""

    columns: Figure
    hop_pj: Figure
    hop_ns: Figure
    spike_ns: Figure
    chip_hop_pj: Figure


@dataclass(frozen=True)
class TimingFigures(_FigureSet):
    """Time per operation of a core and of the step's barrier: the roofline's slopes and offset."""

    synop_ns: Figure
    neuron_update_ns: Figure
    neuron_update_active_ns: Figure
    barrier_ns: Figure


LOIHI2_MESH = MeshFigures(
    columns=Figure(16, "cores", "ASSUMPTION: the 128 cores of a chip as a 16 x 8 grid, numbered row-major, one router "
                   "per core; the Loihi 2 floorplan is not public ([intel-loihi2-brief] states 128 cores in a mesh)"),
    hop_pj=Figure(3.5, "pJ", f"{_T1}: [davies2018] Table 2, 'energy per tile hop (E-W / N-S)' 3.0 / 4.0 pJ, their "
                  "mean per core-to-core hop of the assumed grid"),
    hop_ns=Figure(5.3, "ns", f"{_T1}: [davies2018] Table 2, 'latency per tile hop (E-W / N-S)' 4.1 / 6.5 ns, their "
                  "mean"),
    spike_ns=Figure(2.1, "ns", f"{_T1}: [davies2018] Table 2, 'within-tile spike latency'"),
    chip_hop_pj=Figure(3.5, "pJ", "ASSUMPTION: a message between chips costs one more mesh hop; chip-to-chip links "
                       "are not characterised publicly (a lower bound)"),
)

LOIHI2_TIMING = TimingFigures(
    synop_ns=Figure(3.5, "ns", f"{_T1}: [davies2018] Table 2, 'time per synaptic spike op (max)'"),
    neuron_update_ns=Figure(5.3, "ns", f"{_T1}: [davies2018] Table 2, 'time per neuron update (inactive)' (active "
                            "8.4 ns)"),
    neuron_update_active_ns=Figure(8.4, "ns", f"{_T1}: [davies2018] Table 2, 'time per neuron update (active)'"),
    barrier_ns=Figure(465.0, "ns", f"{_T1}: [davies2018] Table 2, 'mesh-wide barrier sync time' 113-465 ns for 1-32 "
                      "tiles: the full-chip figure, paid once per step"),
)
