"""Accuracy and per-layer diagnosis of a converted spiking network over a data set (``evaluate``).

    ev = evaluate("model.onnx", x, labels, at=[4, 8, 16])   # array, or any iterable of (x, y) / x batches
    print(ev.table()); json.dump(ev.to_dict(), f)           # neurocompile.analysis.report: plots and one HTML page

The modules: ``run`` (the driver, what is measured), ``result`` (Evaluation, LayerDiagnosis: tables and dicts),
``data`` (batches, labels, input checks, the batch that fits), ``stats`` (streaming statistics), ``exact_sums``
(exact per-step sums), ``synops`` (synaptic operations from the estimate); the torchrun shards and the combination
of the ranks' sums are :mod:`neurocompile.analysis.sharding`.
"""
from neurocompile.analysis.evaluate.result import EXACT_RTOL, FLOAT32_RTOL, Evaluation, LayerDiagnosis
from neurocompile.analysis.evaluate.run import evaluate

__all__ = ["evaluate", "Evaluation", "LayerDiagnosis", "EXACT_RTOL", "FLOAT32_RTOL"]
