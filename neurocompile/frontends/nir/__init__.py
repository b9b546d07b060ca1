"""NIR -> IR: a NIR file (nir 1.0.8) read, discretized and mapped to the IR, one job per module: :mod:`.reader` (the
file, through the checked HDF5 reader), :mod:`.importer` (``load_nir``, the graph walk and the node mapping),
:mod:`.layers` and :mod:`.neurons` (the node handlers), :mod:`.discretize` (dt and the discretizations, both ways),
:mod:`.extension` (the schema of neurocompile's own records, shared with :mod:`neurocompile.exporters.nir`) and
:mod:`.fields` (a node's fields read as checked numbers)."""
from neurocompile.frontends.nir.discretize import DEFAULT_DT, DISCRETIZATIONS, GAIN_TOLERANCE, snntorch_beta, \
    snntorch_betas
from neurocompile.frontends.nir.importer import import_nir, load_nir
from neurocompile.frontends.nir.reader import MAPPED, NOT_YET, is_nir, read_nir

__all__ = ["DEFAULT_DT", "DISCRETIZATIONS", "GAIN_TOLERANCE", "MAPPED", "NOT_YET", "import_nir", "is_nir", "load_nir",
           "read_nir", "snntorch_beta", "snntorch_betas"]
