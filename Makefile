# Two commands on a fresh machine (see README):
#   make demo   - create .venv, install masa, track the bundled sample clip into runs/demo
#   make test   - create .venv, install masa with test extras, lint (ruff), run the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/masa track assets/tud-campus/video.mp4 --detections assets/tud-campus/det.txt --out runs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
