# Two entry points (see README): `make run` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell pyenv which python3.10 2>/dev/null || command -v python3.10 || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the benchmark's second interpreter: SpikingJelly 2.0 needs Python >= 3.11 (benchmarks/requirements-sj2.txt)
PYTHON311 ?= $(shell PYENV_VERSION=$$(pyenv versions --bare 2>/dev/null | grep '^3\.11' | tail -1) pyenv which python3.11 2>/dev/null || command -v python3.11)
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: run test test-cpus test-all bench clean

# The math libraries forced onto other instruction sets, as on another CPU (float32 results depend on the kernel
# MKL, oneDNN or OpenBLAS picks): an AVX2 machine, and an older one without AVX.
CPU_AVX2 := MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell
CPU_OLD  := MKL_CBWR=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default OPENBLAS_CORETYPE=Sandybridge

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -c "from neurocompile.ir import fused_cif; fused_cif.load()"
	@touch $(STAMP)

$(BENCH_STAMP): benchmarks/requirements-sj2.txt
	@test -n "$(PYTHON311)" || { echo "make bench needs Python 3.11 (pyenv install 3.11) for SpikingJelly 2.0"; exit 1; }
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON311) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -r benchmarks/requirements-sj2.txt
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps spikingjelly==2.0.0
	@touch $(BENCH_STAMP)

run: $(STAMP)
	$(BIN)/neurocompile examples/digits_cqrelu.onnx --target lava-sim --input examples/digits_test.npy

# the benchmark tables; vs_spikingjelly needs the bench extra (SpikingJelly 0.0.0.0.14, requests, mlxtend), installed here
bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	cd benchmarks && for b in vs_spikingjelly throughput latency_frontier steps_to_lossless import_speed lava_sim lava_stream; do ../$(BIN)/python $$b.py || exit 1; done

test: $(STAMP)
	$(BIN)/python -m pytest

# the default suite again under each emulated CPU (the header line names the kernels in use); .ci/run runs it
test-cpus: $(STAMP)
	env $(CPU_AVX2) $(BIN)/python -m pytest
	env $(CPU_OLD) $(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info
