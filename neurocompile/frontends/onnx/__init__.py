"""The ONNX frontend: the importer, its checks, and neurocompile's custom-op contract."""
