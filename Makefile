# faceverify: train -> export -> serve. `make setup train export evaluate` runs the main job; `make test` tests.
PY      ?= .venv/bin/python
DATA    ?= ../shared/data/lfw
PRESET  ?= default
RUN     ?= runs/$(PRESET)
THREADS ?= 1# one thread: the same seed gives bit-identical weights on a machine; 0 uses every core (faster)
MODEL   ?= $(RUN)/faceverify.onnx
ASSET   := verify_cli/assets/faceverify.onnx

.PHONY: setup train export evaluate bundle test bench lint clean

setup: .venv/.installed

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -e '.[train,dev]'
	touch $@

train: setup
	$(PY) -m train --preset $(PRESET) --data-root $(DATA) --run-dir $(RUN) --threads $(THREADS) --resume

export: setup
	$(PY) -m export --checkpoint $(RUN)/best.pt --out $(MODEL) --data-root $(DATA)

evaluate: setup
	.venv/bin/faceverify evaluate --model $(MODEL) --data-root $(DATA)

bundle: $(MODEL)
	cp $(MODEL) $(ASSET).tmp && mv $(ASSET).tmp $(ASSET)  # never a half-copied bundled model

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench --data-root $(DATA)

lint: setup
	.venv/bin/ruff check verify_cli models train export bench tests

clean:
	rm -rf runs build dist *.egg-info .pytest_cache .ruff_cache
