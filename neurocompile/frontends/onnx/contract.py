"""neurocompile's custom ONNX contract, written once: the PyTorch kit writes it, the frontend and the
ANN reference read it. Attribute defaults are the IR ops' own (``ops.OPS[op].attrs``)."""
from __future__ import annotations

DOMAIN = "neurocompile"
DOMAIN_VERSION = 1
META_TIME_STEPS = "neurocompile.time_steps"   # metadata_props of a spiking export: its T
META_ENCODING = "neurocompile.encoding"       # and its input encoding
ENCODINGS = ("direct", "rate")

# custom node -> {attribute: (ONNX type, required)}; the node's IR op has the same name. Spiking nodes
# (LIF, IF, CIF) are one time step each: the simulator runs time.
CUSTOM_OPS: dict[str, dict[str, tuple[type, bool]]] = {
    "CQReLU": {"levels": (int, True), "clip": (float, True), "shift": (float, False)},
    "LIF": {"beta": (float, True), "threshold": (float, True)},
    "IF": {"threshold": (float, True), "levels": (int, False)},
    "CIF": {"threshold": (float, True), "levels": (int, True), "gamma": (int, False)},
}
