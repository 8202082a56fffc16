# faceverify: train -> export -> serve. `make setup train export evaluate` runs the main job; `make test` tests.
PY      ?= .venv/bin/python
DATA    ?= data/lfw
# a place a local LFW copy may already be (this project's machines keep one there); `make data` links it if whole
LOCAL_LFW ?= ../shared/data/lfw
PRESET  ?= default
RUN     ?= runs/$(PRESET)
THREADS ?= 1# one thread: the same seed gives bit-identical weights on a machine; 0 uses every core (faster)
MODEL   ?= $(RUN)/faceverify.onnx
INT8     = $(MODEL:.onnx=.int8.onnx)# the int8 sibling `make export` writes beside the model
ASSET   := verify_cli/assets/faceverify.onnx
IMAGES  := $(DATA)/lfw-py/lfw-deepfunneled
FETCH_ARGS ?=# more options for `python -m train.fetch`, e.g. --url MIRROR --checksums FILE
FETCH    = $(strip $(PY) -m train.fetch --data-root $(DATA) --look-in $(LOCAL_LFW) $(FETCH_ARGS))

.PHONY: setup data train export int8 evaluate bundle test test-quick bench lint clean

setup: .venv/.installed

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -e '.[train,dev]'
	touch $@

# LFW at $(DATA)/lfw-py: a whole local copy ($$FACEVERIFY_DATA, else $(LOCAL_LFW)) linked, else downloaded and checked
data: setup
	$(FETCH)

# what the stages below wait for: runs the same step only when the image folder is missing
$(IMAGES): | setup
	$(FETCH)

train: setup | $(IMAGES)
	$(PY) -m train --preset $(PRESET) --data-root $(DATA) --run-dir $(RUN) --threads $(THREADS) --resume

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
