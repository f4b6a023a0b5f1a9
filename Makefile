# Two commands: `make lab` opens the course, `make test` runs every check CI runs.
# Both create .venv on first use from this repository's own files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The unit tests and the notebooks that train, run again with torch's CPU kernels limited to AVX2
# and bf16 off: what a laptop without AVX-512 computes (every test and the scores the notebooks
# print must hold there too). The unit tests leave out the files that run whole notebooks
# (every student notebook; 07/08 on fake real-data layouts; the nbgrader round trip): long, and
# the notebooks that train are run directly instead; and the website's browser test, which
# computes nothing with torch.
AVX2 := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
TRAINING_NOTEBOOKS := notebooks/07_training.ipynb notebooks/08_evaluation_and_inference.ipynb
NOT_UNIT := test_student_notebooks test_notebooks_real_data test_nbgrader test_site
UNIT_TESTS := tests $(foreach f,$(NOT_UNIT),--ignore=tests/$(f).py)

.PHONY: lab test test-avx2 clean site

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev,site]"
	touch $@

# JupyterLab refuses to start as root (containers, classroom VMs) unless told it may.
lab: $(VENV)/.installed
	$(BIN)/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The notebooks work in a fresh folder (DEEPLAB_WORKDIR), so a checkpoint left by an earlier
# run is never loaded in place of the training they test.
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	workdir=$$(mktemp -d) && DEEPLAB_WORKDIR=$$workdir $(BIN)/pytest; status=$$?; rm -rf $$workdir; exit $$status
	$(MAKE) test-avx2

test-avx2: $(VENV)/.installed
	@if [ "$$($(BIN)/python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')" = AVX2 ]; then \
		echo "test-avx2: this CPU runs AVX2 kernels already, so the run above was the AVX2 run"; \
	else \
		workdir=$$(mktemp -d) && DEEPLAB_WORKDIR=$$workdir $(AVX2) \
			$(BIN)/pytest $(UNIT_TESTS) $(TRAINING_NOTEBOOKS); \
		status=$$?; rm -rf $$workdir; exit $$status; \
	fi

clean:
	rm -rf $(VENV) runs .pytest_cache build/site

# The course as a website in build/site (mkdocs.yml, tools/site.py): the solved notebooks with
# their stored outputs, nothing executed. --strict: a link that does not resolve fails the build.
site: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "site: build/site/index.html (search needs a server: $(BIN)/mkdocs serve)"
