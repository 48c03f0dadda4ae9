"""The quickstart notebook: stripped in the repository, in step with its jupytext source, and runnable top to
bottom in a fresh kernel on CPU (a few training steps through its TOTAL_STEPS parameter)."""

import base64
import importlib.util
import io
import json
import os

import jupytext
import nbformat
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "notebooks", "quickstart.ipynb")
SOURCE = os.path.join(REPO, "notebooks", "quickstart.py")
_SPEC = importlib.util.spec_from_file_location("notebook_execute", os.path.join(REPO, "notebooks", "execute.py"))
execute = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(execute)


def test_notebook_is_stored_without_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  assert not execute.has_outputs(nb), (
    "notebooks/quickstart.ipynb holds outputs: python notebooks/execute.py --strip notebooks/quickstart.ipynb"
  )


def test_notebook_matches_its_jupytext_source():
  stored = nbformat.read(NOTEBOOK, as_version=4)
  source = jupytext.read(SOURCE)
  assert [(c.cell_type, c.source) for c in stored.cells] == [(c.cell_type, c.source) for c in source.cells], (
    "notebooks/quickstart.ipynb and quickstart.py differ: jupytext --sync notebooks/quickstart.ipynb"
  )
  parameters = [c for c in stored.cells if "parameters" in c.metadata.get("tags", [])]
  assert len(parameters) == 1 and "TOTAL_STEPS" in parameters[0].source


def test_injected_parameters_must_exist_in_the_parameters_cell():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  with pytest.raises(ValueError, match=r"\['TOTAL_STEP'\] are not defined"):
    execute.inject_parameters(nb, {"TOTAL_STEP": 3})


def _png_outputs(nb):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  return [
    np.asarray(Image.open(io.BytesIO(base64.b64decode(o.data["image/png"]))))
    for cell in nb.cells
    if cell.cell_type == "code"
    for o in cell.outputs
    if "image/png" in o.get("data", {})
  ]


def test_notebook_runs_top_to_bottom_in_a_fresh_cpu_kernel(tmp_path):
  workdir = str(tmp_path / "run")
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "true"}
  env.pop("XLA_FLAGS", None)  # one CPU device, as on a laptop
  nb = execute.execute(NOTEBOOK, {"TOTAL_STEPS": 4, "WORKDIR": workdir}, timeout=300, env=env, cwd=str(tmp_path))
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
  assert not errors
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records if r["split"] == "test"] == [0, 1, 2, 3, 4]
  assert max(r["step"] for r in records if r["split"] == "train") == 4
  # Five pictures: the curves, the retrievals, the surrogates, the losses, the search results.
  images = _png_outputs(nb)
  assert len(images) == 5
  text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  assert "trained (test)" in text and os.path.join(workdir, "query.png") in text and "digits/test[" in text
  assert os.path.isfile(os.path.join(workdir, "index", "manifest.json"))
