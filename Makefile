# Set-up and the two everyday commands. Everything installs into .venv from requirements.lock.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.cache/jax
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test docs install lock clean

# The TPU compiler for tests/test_tpu_compile.py, pinned in setup.py's 'tpu' extra; kept
# out of the environment's own packages so that no other process tries to start a TPU.
LIBTPU := $(VENV)/libtpu
LIBTPU_PIN := $(shell grep -o "libtpu==[0-9.]*" setup.py)

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# The main job: build the synthetic dataset, train briefly, sample held-out clips with the
# bundled demo checkpoint, write stereo videos and a metrics report under outputs/demo.
demo: install
	$(PY) -m eye2eye_jax.demo --output_dir=outputs/demo

$(LIBTPU)/.installed: setup.py $(VENV)/.installed
	$(PY) -m pip install --quiet --target $(LIBTPU) '$(LIBTPU_PIN)'
	touch $@

# The suite includes building the manual (tests/test_docs.py) and checking its tables and
# command lines.
test: install $(LIBTPU)/.installed
	$(PY) -m pytest -n 2 -q --durations=30 tests

# The manual as a site: docs/_build/html/index.html.
docs: install
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# Re-pins requirements.lock from setup.py in a throwaway environment.
lock:
	rm -rf /tmp/eye2eye_lock && $(PYTHON) -m venv /tmp/eye2eye_lock
	/tmp/eye2eye_lock/bin/pip install --quiet '.[test,docs]'
	/tmp/eye2eye_lock/bin/pip freeze --exclude-editable | grep -v '^eye2eye' > requirements.lock

clean:
	rm -rf $(VENV) outputs .cache
