"""neurocompile's Lava processes. Lava imports every module in this folder when it looks for
ProcessModels, so it holds Process and ProcessModel modules only: no scripts, no heavy imports.

Every process here runs ``n_samples`` samples back to back, one per *period* of ``period`` steps:
phases [0, steps) simulate the sample, phases [steps, period) flush what is still in flight
(neurons stay silent and reset). Neuron state and gating use the phase, not Lava's global step.
"""
