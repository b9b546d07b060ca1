"""The graph IR: the graph and its nodes (graph.py), the op table (ops/), the neuron maths (neurons.py),
the wake/sleep schedule (schedule.py) and the float64 interpreter (interpreter.py)."""
from neurocompile.ir.graph import Graph, Node, Shape, is_saved_ir, module_name

__all__ = ["Graph", "Node", "Shape", "is_saved_ir", "module_name"]
