"""The op registry: :data:`OPS` (op name -> the one instance of its class), filled by the :func:`register` class
decorator of each op family, and :func:`op_of`."""
from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from neurocompile.ir import Node

if TYPE_CHECKING:  # base imports the attribute rules, which read OPS: no import cycle at run time
    from neurocompile.ir.ops.base import Op

OPS: dict[str, "Op"] = {}
OpClass = TypeVar("OpClass", bound=type)


def register(cls: OpClass) -> OpClass:
    """Class decorator: make ``cls`` the op its name names (``OPS[cls.__name__]``, what a node's ``op`` says)."""
    if cls.__name__ in OPS:
        raise ValueError(f"op {cls.__name__} is registered twice")
    OPS[cls.__name__] = cls()
    return cls


def op_of(node: Node) -> "Op":
    """The op table entry of ``node``: what its traits say is what the compiler does with it."""
    return OPS[node.op]
