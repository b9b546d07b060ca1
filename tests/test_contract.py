"""The custom ONNX contract is one: what the PyTorch kit writes is exactly what the frontend reads."""
import onnx
import pytest
import torch
from onnx import helper

from neurocompile.frontends.onnx.contract import CUSTOM_OPS, DOMAIN, META_TIME_STEPS
from neurocompile.errors import ModelLoadError
from neurocompile.frontends.onnx.importer import import_model
from neurocompile.ir.ops import OPS
from neurocompile.torch import CIF, IF, LIF, CQReLU, export_onnx
from tests.onnx_util import make_model


def test_kit_exports_only_contract_attributes(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), CQReLU(4, 2.0), torch.nn.Linear(4, 4), LIF(), torch.nn.Linear(4, 4),
                              IF(), torch.nn.Linear(4, 4), CIF(levels=4), torch.nn.Linear(4, 2))
    path = export_onnx(net, torch.zeros(2, 4), tmp_path / "all.onnx", time_steps=3)
    model = onnx.load(path)
    custom = [n for n in model.graph.node if n.domain == DOMAIN]
    assert {n.op_type for n in custom} == set(CUSTOM_OPS)
    for n in custom:
        names = {a.name for a in n.attribute}
        spec = CUSTOM_OPS[n.op_type]
        assert names <= set(spec) and {k for k, (_, req) in spec.items() if req} <= names, n.op_type
        assert set(spec) <= set(OPS[n.op_type].attrs)  # every attribute has its one default in ops.py
    assert {p.key: p.value for p in model.metadata_props}[META_TIME_STEPS] == "3"


def test_missing_required_custom_attribute_is_refused():
    nodes = [helper.make_node("CQReLU", ["x"], ["y"], domain=DOMAIN, levels=4)]  # no clip
    with pytest.raises(ModelLoadError, match=r"required attribute\(s\) \['clip'\] missing"):
        import_model(make_model(nodes, custom=True))
