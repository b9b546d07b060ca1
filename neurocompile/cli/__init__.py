"""Command line: a thin front over neurocompile.api, one module per command.

    neurocompile inspect MODEL.onnx [--passes none|optimize|casc]
    neurocompile MODEL.onnx [--target reference] [--steps T] [--levels L] [--neuron cif|if]
                 [--input X.npy] [--json OUT.json] ...

entry.py holds ``main`` (the subcommand table, help, version and exit codes); run.py, inspect.py, export.py,
verify.py, estimate.py, evaluate.py and loihi2.py a command each (its parser and handler); options.py, checks.py,
printing.py and signals.py what they share.
"""
from neurocompile.cli.entry import Subcommand, main
from neurocompile.cli.options import UsageError
from neurocompile.cli.printing import fixed_point_summary
from neurocompile.cli.signals import HARD_STOP_S, Interrupted

__all__ = ["main", "Subcommand", "UsageError", "fixed_point_summary", "Interrupted", "HARD_STOP_S"]
