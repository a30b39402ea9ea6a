# One-command set-up: every target below creates .venv with the pinned versions first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The model-vs-human stimuli: $SPARSEVIS_DATA_DIR if set, else the shared copy beside the
# checkout when there is one, else the per-user cache (see README).
SHARED_DATA := $(wildcard ../shared/data/model-vs-human)
ifeq ($(origin SPARSEVIS_DATA_DIR), undefined)
ifneq ($(SHARED_DATA),)
export SPARSEVIS_DATA_DIR := $(abspath ../shared/data)
endif
endif
export HF_HUB_OFFLINE ?= 1

.PHONY: setup test book book-real book-tiny bench clean chromium

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[book,dev]"
	$(PY) -m sparsevis fetch-weights
	touch $(STAMP)

setup: $(STAMP)

# The book tests screenshot a built page with Debian's chromium; without it they skip.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium not installed: the screenshot tests will be skipped"

test: $(STAMP) chromium
	$(PY) -m pytest -q -n 2

book: $(STAMP)
	$(PY) -m sparsevis book --profile demo

# The `real` profile's book (ResNet-18/50, ViT-B/32, Swin-V2-T, MobileNetV2 with ImageNet
# weights: online torchvision downloads them; offline a run without them is left out) in its own
# book root, published beside the demo book as _build/html/real/. Same run store and npm tarballs.
REAL_ROOT := _build/real-book
book-real: $(STAMP)
	mkdir -p $(REAL_ROOT) _build/html
	tar -cf - --exclude=book/_generated --exclude=notebooks/figures --exclude=.ipynb_checkpoints \
	  _config.yml _toc.yml book notebooks | tar -xf - -C $(REAL_ROOT)
	cd $(REAL_ROOT) && SPARSEVIS_VENDOR_DIR=$${SPARSEVIS_VENDOR_DIR:-$(abspath _build/vendor)} \
	  $(abspath $(PY)) -m sparsevis book --profile real
	rm -rf _build/html/real && cp -r $(REAL_ROOT)/_build/html _build/html/real

book-tiny: $(STAMP)
	$(PY) -m sparsevis book --profile tiny

bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_lost.py

clean:
	rm -rf _build runs book/_generated
