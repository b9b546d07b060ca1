"""neurocompile.torch: the PyTorch kit.

Modules built on neurocompile.ir.neurons (CQReLU, LIF, IF, CIF), ONNX export that neurocompile
imports, and the IDSNN recipe (ResNet teacher, spiking student, initialization, distillation).
The kit writes ONNX files and never reaches into the IR. Inside this package ``import torch`` is an
absolute import and always means the PyTorch library.
"""
from __future__ import annotations

from neurocompile.torch.export import export_onnx
from neurocompile.torch.idsnn import (History, distillation_loss, evaluate, fit, init_student_from_teacher,
                                      loop_interpolate, resnet, spiking_resnet, train)
from neurocompile.torch.modules import CIF, IF, LIF, CQReLU, TimeDistributed, has_spiking, replace_relu

__all__ = ["CQReLU", "LIF", "IF", "CIF", "TimeDistributed", "has_spiking", "replace_relu", "export_onnx", "resnet",
           "spiking_resnet", "init_student_from_teacher", "loop_interpolate", "distillation_loss", "History", "fit",
           "train", "evaluate"]
