"""Writers of a converted network: the single-file artifact, lava-dl netx HDF5, NIR."""
