"""neurocompile: trained networks (ONNX, NIR) to spiking networks for the reference simulator, Lava and Loihi 2.

Start at :mod:`neurocompile.api` (the facade) or the ``neurocompile`` command (:mod:`neurocompile.cli`); the README's
"What is where" maps the layers.
"""
