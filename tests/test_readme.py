"""Every command the README and docs/experiments.md show runs as written, on the miniatures of its data sets.

The commands are read from the ``bash`` blocks of the README and of docs/experiments.md (every
experiment's command, generated from the experiment table). Paths of the README's examples are mapped to
generated data: a ``--config.input.data_dir`` (or ``--data_dir``) to the miniature of its data set in
the original layout (``tests/miniatures.py``), ``/weights/...`` to a file, ``runs/...`` and ``/tmp/...``
to the test's folder.

* Default suite: each training or evaluation command goes through the real flag parser and the
  trainer's checks (``train.prepare``: data set, sampler, run length, model, optimizer, evaluations),
  shrunk to the miniature (tiny images, batch and network; see ``tests/test_experiments.shrink``);
  each converter command runs.
* ``-m slow``: each command runs for real as a subprocess, training for the shortest run that passes
  the warm-up, then the evaluation, export and search commands on the runs it produced.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest
from absl import flags

from suprank_jax.configs import common
from suprank_jax.evaluate import define_flags as define_evaluate_flags
from suprank_jax.evaluate import prepare_evaluators
from suprank_jax.input_pipeline import to_array_record
from suprank_jax.runtime import parallel
from suprank_jax.runtime.run_dir import RunDir
from suprank_jax.training import main as train_main
from suprank_jax.training import train
from tests import miniatures
from tests.test_experiments import shrink

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The data folders of the README's examples and the data sets they hold.
DATA_DIRS = {
  "/data/Stanford_Online_Products": "sop",
  "/mnt/Stanford_Online_Products": "sop",
  "/data/CUB_200_2011": "cub",
  "/data/Inaturalist": "inaturalist",
  "/data/dyml_vehicle": "dyml_vehicle",
  "/data/dyml_animal": "dyml_animal",
  "/data/dyml_product": "dyml_product",
  "/data/gldv2": "gldv2_hierarchical",
  "/data/revisited": "revisited",
}


# The pages whose commands are tested: the README, the reference pages of docs/ that hold commands, then
# the experiments page (generated from the table).
PAGES = (
  "README.md",
  *(os.path.join("docs", f"{page}.md") for page in ("datasets", "evaluation", "figures", "experiments")),
)


def readme_commands(module: str | None = None, pages: tuple[str, ...] = PAGES) -> list[str]:
  """The ``python3 -m suprank_jax...`` commands of the bash blocks of ``pages`` (continuations joined,
  comments removed), in order, each once; only those of ``module`` when given."""
  commands = []
  for page in pages:
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
      text = f.read()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
      for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        for part in line.split("&&"):
          part = re.sub(r"\s+#.*$", "", part).strip()
          if part.startswith("python3 -m suprank_jax") and part not in commands:
            commands.append(part)
  if module:
    commands = [c for c in commands if shlex.split(c)[2] == module]
  return commands


class Paths:
  """Maps the README's example paths to generated files under ``root`` (made on first use)."""

  def __init__(self, root):
    self.root = str(root)
    self.made = {}

  def data_dir(self, path):
    dataset = DATA_DIRS[path]
    if dataset not in self.made:
      folder = os.path.join(self.root, "data", dataset)
      self.made[dataset] = (
        miniatures.make_revisited(folder, num_distractors=12)
        if dataset == "revisited"
        else miniatures.MINIATURES[dataset](folder)
      )
    return self.made[dataset]

  def weights(self, path):
    out = os.path.join(self.root, "weights", os.path.basename(path))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    open(out, "wb").close()  # the checks only need the file to exist
    return out

  def folder(self, path):
    return os.path.join(self.root, "out", path.lstrip("/").replace("/", "_"))

  def map(self, token):
    key, sep, value = token.partition("=")
    data_key = key in ("--config.input.data_dir", "--data_dir") or re.fullmatch(r"--config\.evals\.\w+\.data_dir", key)
    if sep and data_key and value in DATA_DIRS:
      return f"{key}={self.data_dir(value)}"
    if sep and key in ("--config.model.pretrained_path", "--config.model.whitening_path"):
      return f"{key}={self.weights(value)}"
    if token.startswith("/weights/"):
      return self.weights(token)
    if token in DATA_DIRS:
      return self.data_dir(token)
    if token.startswith("/data/"):  # an output folder of the examples, e.g. /data/tfds
      return self.folder(token)
    if token.startswith(("runs/", "/tmp/")) or (sep and value.startswith(("runs/", "/tmp/"))):
      return f"{key}={self.folder(value)}" if sep else self.folder(token)
    if ":runs/" in token:
      config, _, run = token.partition(":")
      return f"{config}:{self.folder(run)}"
    return token


def _argv(command, paths):
  tokens = [paths.map(t) for t in shlex.split(command)[3:]]
  return ["prog"] + list(tokens)


def _parse(argv, define_flags):
  """``argv`` parsed by a command's own flags, defined in a fresh ``FlagValues``."""
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  argv_saved = sys.argv
  sys.argv = argv  # ml_collections finds the --config.* overrides in sys.argv
  try:
    flag_values(argv)
    return flag_values
  finally:
    sys.argv = argv_saved


def test_experiments_page_shows_every_experiment_and_the_original_readme_order_first():
  commands = readme_commands("suprank_jax.train", pages=(os.path.join("docs", "experiments.md"),))
  configs = [
    re.search(r"--config (suprank_jax/configs/\S+?\.py)", c).group(1)
    for c in commands
    if re.search(r"--config suprank_jax/configs/(happier|roadmap|suprank|baselines|landmarks)/", c)
  ]
  on_disk = sorted(
    os.path.relpath(os.path.join(d, f), REPO)
    for family in ("happier", "roadmap", "suprank", "baselines", "landmarks")
    for d, _, files in os.walk(os.path.join(REPO, "suprank_jax", "configs", family))
    for f in files
    if f.endswith(".py") and f != "__init__.py"
  )
  assert sorted(configs) == on_disk
  assert configs[:6] == [
    f"suprank_jax/configs/happier/{name}.py"
    for name in ("inat_base", "inat_full", "sop", "dyml_vehicle", "dyml_animal", "dyml_product")
  ]


@pytest.mark.parametrize("command", readme_commands("suprank_jax.train"))
def test_readme_training_command_passes_the_trainer_checks(command, tmp_path):
  parsed = _parse(_argv(command, Paths(tmp_path)), train_main.define_flags)
  config, workdir = parsed.config, parsed.workdir
  if config.input.dataset != "digits":
    shrink(config, config.input.data_dir)
  run = train.prepare(config, workdir, log=lambda _: None)
  assert run.total_steps >= 1


@pytest.mark.parametrize("command", readme_commands("suprank_jax.evaluate"))
def test_readme_evaluation_command_parses_and_reads_its_data(command, tmp_path):
  paths = Paths(tmp_path)
  argv = _argv(command, paths)
  # The runs the commands evaluate: their config.yaml, as the trainer writes it.
  runs = [t.split("=", 1)[1] for t in argv if t.startswith("--workdir=")]
  runs += [argv[i + 1] for i, t in enumerate(argv[:-1]) if t == "--workdir"]
  for run in runs:
    config = common.base_config() if "digits" in run else _experiment_for(run, paths)
    os.makedirs(run, exist_ok=True)
    RunDir(run).write_config(config)
  parsed = _parse(argv, define_evaluate_flags)
  config = parsed.config
  if config is None:
    config = RunDir(parsed.workdir).read_config()
  if config.input.dataset != "digits":
    shrink(config, config.input.data_dir)
  _, evaluators = prepare_evaluators(config, parallel.make_mesh(), log=lambda _: None)
  assert evaluators


def _experiment_for(run, paths):
  """The shrunk config of the experiment a README run folder is named after (runs/happier_sop)."""
  from tests.test_experiments import load_experiment  # pylint: disable=g-import-not-at-top

  name = os.path.basename(run).removeprefix("runs_")
  family, _, experiment = name.partition("_")
  config = load_experiment(f"{family}/{experiment}.py")
  data = next(d for d, ds in DATA_DIRS.items() if ds == config.input.dataset)
  for ev in config.evals.values():
    if ev.get("kind") == "revisited":
      ev.data_dir = paths.data_dir("/data/revisited")
  return shrink(config, paths.data_dir(data))


@pytest.mark.parametrize("command", readme_commands("suprank_jax.input_pipeline.to_array_record"))
def test_readme_converter_command_converts_its_data(command, tmp_path):
  argv = _argv(command, Paths(tmp_path))[1:]
  out = to_array_record.main(argv)
  assert os.path.isdir(out)


def _run(command, paths, *extra, timeout=900):
  args = [sys.executable, "-m", shlex.split(command)[2], *_argv(command, paths)[1:], *extra]
  result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
  return result


def _shrink_flags(command, paths):
  """The tiny run of a README training command, as command-line overrides."""
  config = _parse(_argv(command, paths), train_main.define_flags).config.copy_and_resolve_references()
  if config.input.dataset == "digits":
    return [
      "--config.total_steps=4",
      "--config.num_epochs=0",
      "--config.log_every_steps=2",
      "--config.checkpoint_every_steps=2",
    ]
  before = config.copy_and_resolve_references()
  shrink(config, config.input.data_dir)
  from tests.config_audit import leaves  # pylint: disable=g-import-not-at-top

  out = []
  after = leaves(config)
  for key, value in leaves(before).items():
    if after[key] != value:
      out.append(
        f"--config.{key}={after[key]!r}" if not isinstance(after[key], str) else f"--config.{key}={after[key]}"
      )
  if config.model.get("pretrained_path"):  # the tiny network has no weights to load (shrink: pretrained=False)
    out.append("--config.model.pretrained_path=")
  if config.model.get("whitening_path"):
    out.append(f"--config.model.whitening_path={_whitening_file(config, paths.root)}")
  return [o.replace("'", "") for o in out]


def _whitening_file(config, root):
  """A whitening of the shrunk model's projection shape (the README's file is the original's, for the
  full-size ResNet-101), written as ``.npz``."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from suprank_jax import models  # pylint: disable=g-import-not-at-top
  from suprank_jax.models import whitening  # pylint: disable=g-import-not-at-top

  model_config = config.model.copy_and_resolve_references()
  model_config.whitening_path = ""
  model = models.build_model(model_config)
  size = config.input.image_size
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, size, size, 3), np.float32), train=False))
  in_dim, out_dim = shapes["params"]["head"]["projection"]["kernel"].shape
  rng = np.random.default_rng(0)
  white = whitening.Whitening(
    rng.normal(size=(out_dim, in_dim)).astype(np.float32) / np.sqrt(in_dim), np.zeros(out_dim, np.float32)
  )
  return whitening.save_whitening(os.path.join(root, "weights", "whitening.npz"), white)


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
  paths = Paths(tmp_path)
  for command in readme_commands("suprank_jax.train"):
    _run(command, paths, *_shrink_flags(command, paths))
  for module in ("suprank_jax.evaluate", "suprank_jax.export"):
    for command in readme_commands(module):
      _run(command, paths)
  query = os.path.join(os.getcwd(), "query.png")
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from suprank_jax.input_pipeline.readers import digits  # pylint: disable=g-import-not-at-top

  Image.fromarray(digits.digits("", "test").load_image(0)[..., 0]).save(query)
  for command in readme_commands("suprank_jax.search"):
    _run(command.replace(" [more.png ...]", ""), paths)
