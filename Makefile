# make train: set up .venv (Python 3.11, TensorFlow 2.x), fetch MNIST, train the conditional MNIST DCGAN.
# make test:  set up .venv and .venv37 (Python 3.7, TensorFlow 1.15), install Debian's chromium for the browser
#             test (tests/setup_browser.sh) and run the whole test suite on both.
PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= ./data
ARGS ?=

.PHONY: train test setup data clean-venvs

$(VENV)/.installed: requirements.txt requirements-test.txt
	@bash tests/setup_venv.sh $(PYTHON) $(VENV)
	@touch $@

setup: $(VENV)/.installed

data: setup
	$(VENV)/bin/python download.py mnist --data_dir $(DATA_DIR)

train: data
	$(VENV)/bin/python main.py --dataset mnist --input_height=28 --output_height=28 --train --data_dir $(DATA_DIR) $(ARGS)

test:
	@bash tests/run_all.sh

clean-venvs:
	rm -rf .venv .venv37
