"""neurocompile's Lava processes. Lava imports every module in this folder when it looks for
ProcessModels, so it holds Process and ProcessModel modules only: no scripts, no heavy imports.

Every process here runs a stream of samples, one per *period* of ``period`` steps. With a sleep phase a
process is staggered by its ``offset`` (the step its data arrives): it starts each sample then, and its
steps [offset, offset + period) are that sample's. Without one (the IF baseline) offsets are 0 and the
steps [steps, period) of each period flush what is still in flight (neurons stay silent). Neuron state
and gating use the sample's step (``PhasedModel.sample_and_step``), not Lava's global step.
"""
