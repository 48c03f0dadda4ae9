"""Makes the README's pictures from one short digits run (about 3 minutes on 2 CPU cores).

    python docs/make_pictures.py [--workdir /tmp/suprank_docs] [--steps 600]

1. Runs notebooks/quickstart.ipynb headlessly (``--steps`` training steps) and keeps two of its figures:
   docs/notebook_curves.png (loss and test metrics) and docs/notebook_losses.png (SupAP / SupHAP against
   the true AP / H-AP).
2. docs/retrievals_untrained.png, docs/retrievals.png: the picture the trainer writes after an evaluation,
   for a freshly initialised network and for the trained run.
3. docs/search.png: ``python -m suprank_jax.search`` on the run's exported test index, with three
   training images (not in the gallery) as query files.
"""

import argparse
import base64
import importlib.util
import os
import subprocess
import sys

import jax
from PIL import Image

from suprank_jax.evaluation import evaluator, pictures
from suprank_jax.index import export
from suprank_jax.input_pipeline import datasets, pipeline
from suprank_jax.runtime import parallel

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
_SPEC = importlib.util.spec_from_file_location("notebook_execute", os.path.join(REPO, "notebooks", "execute.py"))
execute = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(execute)


def _figures(nb):
  return [
    base64.b64decode(o.data["image/png"])
    for cell in nb.cells
    if cell.cell_type == "code"
    for o in cell.outputs
    if "image/png" in o.get("data", {})
  ]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", default="/tmp/suprank_docs")
  parser.add_argument("--steps", type=int, default=600)
  args = parser.parse_args()
  nb = execute.execute(
    os.path.join(REPO, "notebooks", "quickstart.ipynb"),
    {"TOTAL_STEPS": args.steps, "WORKDIR": args.workdir},
    timeout=1200,
  )
  curves, _, _, losses, _ = _figures(nb)
  for name, data in (("notebook_curves.png", curves), ("notebook_losses.png", losses)):
    with open(os.path.join(HERE, name), "wb") as f:
      f.write(data)

  # The trainer's picture for a freshly initialised network and for the trained run (5 queries, 6 results).
  run = export.load_run(args.workdir)
  mesh = parallel.make_mesh()
  test = evaluator.make_evaluator("test", run.config.evals.test, run.config.input, model=run.model, mesh=mesh)
  untrained = run.model.init(jax.random.PRNGKey(0), pipeline.sample_images(run.config.input, test.query_source))
  for name, variables in (("retrievals_untrained.png", untrained), ("retrievals.png", run.variables)):
    picture = pictures.evaluation_picture(
      test, jax.device_put(variables, parallel.replicated(mesh)), num_queries=5, k=6
    )
    Image.fromarray(picture).save(os.path.join(HERE, name))

  train = datasets.get_source(run.config.input, "train")
  queries = []
  for i in (11, 42, 77):
    queries.append(os.path.join(args.workdir, f"train_{i}.png"))
    Image.fromarray(train.load_image(i)[..., 0]).save(queries[-1])
  subprocess.run(
    [
      sys.executable,
      "-m",
      "suprank_jax.search",
      "--index",
      os.path.join(args.workdir, "index"),
      *queries,
      "--k",
      "8",
      "--picture",
      os.path.join(HERE, "search.png"),
    ],
    check=True,
    cwd=REPO,
  )


if __name__ == "__main__":
  main()
