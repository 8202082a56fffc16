# faceverify: train -> export -> serve. `make setup train export evaluate` runs the main job; `make test` tests.
PY      ?= .venv/bin/python
DATA    ?= data/lfw
# a place a local LFW copy may already be (this project's machines keep one there); `make data` links it if whole
LOCAL_LFW ?= ../shared/data/lfw
PRESET  ?= default
RUN     ?= runs/$(PRESET)
THREADS ?= 2# the same seed and thread count give bit-identical weights on one kind of CPU; 0 uses every core
MODEL   ?= $(RUN)/faceverify.onnx
INT8     = $(MODEL:.onnx=.int8.onnx)# the int8 sibling `make export` writes beside the model
ASSET   := verify_cli/assets/faceverify.onnx
IMAGES  := $(DATA)/lfw-py/lfw-deepfunneled
FETCH_ARGS ?=# more options for `python -m train.fetch`, e.g. --url MIRROR --checksums FILE
FETCH    = $(strip $(PY) -m train.fetch --data-root $(DATA) --look-in $(LOCAL_LFW) $(FETCH_ARGS))

.PHONY: setup data train experiments export int8 evaluate bundle test test-quick bench lint clean

setup: .venv/.installed

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -e '.[train,dev,serve]'
	touch $@

# LFW at $(DATA)/lfw-py: a whole local copy ($$FACEVERIFY_DATA, else $(LOCAL_LFW)) linked, else downloaded and checked
data: setup
	$(FETCH)

# what the stages below wait for: runs the same step only when the image folder is missing
$(IMAGES): | setup
	$(FETCH)

train: setup | $(IMAGES)
	$(PY) -m train --preset $(PRESET) --data-root $(DATA) --run-dir $(RUN) --threads $(THREADS) --resume

# the report's ten experiments to their early stop, smallest first, each resumable, DevTest read once each
EXPERIMENTS ?= exp9 exp10 exp8 exp7 exp6 exp5 exp4 exp3 exp2 exp1
experiments: setup | $(IMAGES)
	for p in $(EXPERIMENTS); do \
	  $(PY) -m train --preset $$p --data-root $(DATA) --run-dir runs/$$p --threads $(THREADS) --resume --report-test || exit 1; \
	done
	$(PY) -m train.experiments runs

export: setup | $(IMAGES)
	$(PY) -m export --checkpoint $(RUN)/best.pt --out $(MODEL) --data-root $(DATA)

evaluate: setup | $(IMAGES)
	.venv/bin/faceverify evaluate --model $(MODEL) --data-root $(DATA)

# the int8 model of $(MODEL), when it has none or an older one (the bundled one: make int8 MODEL=$(ASSET))
int8: $(INT8)

$(INT8): $(MODEL) | setup $(IMAGES)
	$(PY) -m export.quantize --model $(MODEL) --data-root $(DATA)

bundle: $(MODEL) $(INT8)
	cp $(MODEL) $(ASSET).tmp && cp $(INT8) $(ASSET:.onnx=.int8.onnx).tmp  # never a half-copied bundled model
	mv $(ASSET).tmp $(ASSET) && mv $(ASSET:.onnx=.int8.onnx).tmp $(ASSET:.onnx=.int8.onnx)

test: setup
	$(PY) -m pytest -q

test-quick: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup | $(IMAGES)
	$(PY) -m bench --data-root $(DATA)

lint: setup
	.venv/bin/ruff check verify_cli models train export bench tests

clean:
	rm -rf runs build dist *.egg-info .pytest_cache .ruff_cache
