"""The experiment table (``suprank_jax/configs/experiments/``) and what is made from it.

* docs/experiments.md and every config file ``suprank_jax/configs/<family>/<file>.py`` equal
  ``docs/make_experiments.py``'s output, so that the page and the files never drift from the table.
* Every config file gives its record's config, and rejects any argument as ``common.parse_arg``.
* Each record agrees with itself: its one source names the groups and run settings it composes, its
  weights are those of its model, its data set is the one its dataset group reads.
"""

import importlib.util
import os
import re

import pytest

from suprank_jax.configs import experiments
from suprank_jax.configs.experiments import DATASETS, PAPERS, REPOSITORIES, WEIGHTS
from tests.test_experiments import CONFIGS, load_experiment
from tests.test_experiments import EXPERIMENTS as CONFIG_FILES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SPEC = importlib.util.spec_from_file_location("make_experiments", os.path.join(REPO, "docs", "make_experiments.py"))
make_experiments = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(make_experiments)

RECORDS = list(experiments.EXPERIMENTS.values())


def _resolved(config):
  return config.copy_and_resolve_references().to_dict()


@pytest.mark.parametrize("path", sorted(make_experiments.outputs()))
def test_page_and_config_files_equal_the_scripts_output(path):
  with open(os.path.join(REPO, path), encoding="utf-8") as f:
    text = f.read()
  assert text == make_experiments.outputs()[path], (
    f"{path} differs from the table: run python3 docs/make_experiments.py"
  )


def test_every_config_file_has_a_record_and_every_record_a_file():
  assert sorted(CONFIG_FILES) == sorted(f"{name}.py" for name in experiments.EXPERIMENTS)
  for family, module in experiments.FAMILIES.items():
    assert all(e.family == family for e in module.EXPERIMENTS), family


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_config_file_gives_its_records_config(name):
  assert _resolved(load_experiment(f"{name}.py")) == _resolved(experiments.EXPERIMENTS[name].config())


def test_config_file_rejects_any_argument_as_parse_arg():
  spec = importlib.util.spec_from_file_location("experiment_config", os.path.join(CONFIGS, "roadmap", "inat.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert _resolved(module.get_config()) == _resolved(module.get_config(None)) == _resolved(module.get_config(""))
  with pytest.raises(ValueError, match=re.escape("unknown config argument 'smoke' in 'smoke'; valid: []")):
    module.get_config("smoke")


def test_titles_are_unique_and_name_no_data_set_heading():
  titles = [e.title for e in RECORDS]
  assert len(set(titles)) == len(titles)
  assert not set(titles) & {d.title for d in DATASETS.values()}


def test_every_experiment_cites_one_source_and_one_paper():
  for e in RECORDS:
    assert e.source.repository in REPOSITORIES and e.source.text, e.name
    assert e.paper in PAPERS and e.table and e.published, e.name


def _arguments(source):
  """``{key: value}`` of a source's ``key=value`` arguments, without Hydra's ``experience.`` prefix."""
  return {k.removeprefix("experience."): v for k, v in (t.split("=", 1) for t in source.text.split() if "=" in t)}


@pytest.mark.parametrize("e", RECORDS, ids=lambda e: e.name)
def test_source_gives_the_run_settings_of_the_composition(e):
  args = _arguments(e.source)
  assert int(args.get("max_iter", 100)) == e.epochs  # default.yaml's max_iter
  assert int(args.get("warmup_step", 0)) == e.freeze_epochs
  assert int(args.get("seed", 0)) == e.seed
  batch = [v for k, v in args.items() if k.endswith(".batch_size")]
  assert [int(v) for v in batch] == ([e.batch_size] if e.batch_size else [])
  per_tuple = [v for k, v in args.items() if k.endswith((".batches_per_super_pair", ".batches_per_super_tuple"))]
  assert [int(v) for v in per_tuple] == ([e.batches_per_super_tuple] if e.batches_per_super_tuple else [])
  levels = args.get("accuracy_calculator.compute_for_hierarchy_levels")
  if levels:
    assert tuple(int(x) for x in levels.strip("[]").split(",")) == e.hierarchy_levels


@pytest.mark.parametrize("e", [e for e in RECORDS if e.source.repository != "roadmap"], ids=lambda e: e.name)
def test_source_names_the_groups_of_the_composition(e):
  # The SupRank and HAPPIER repositories' file names are our group names in lower case; the ROADMAP
  # repository's runs map its own files to groups (roadmap_repo_*), as each record's notes say.
  args = _arguments(e.source)
  named = {kind: args[kind].lower() for kind in ("dataset", "model", "optimizer", "loss", "memory") if kind in args}
  assert named == {kind: group for kind, group in e.groups.items() if group != "no_memory"}


@pytest.mark.parametrize("e", RECORDS, ids=lambda e: e.name)
def test_weights_and_data_set_are_those_of_the_composition(e):
  config = e.config()
  pretrained = [w for w in e.weights if WEIGHTS[w].flag == "config.model.pretrained_path"]
  whitening = [w for w in e.weights if WEIGHTS[w].flag == "config.model.whitening_path"]
  assert len(pretrained) == int(config.model.pretrained)
  assert all(WEIGHTS[w].model == config.model.name for w in e.weights)
  assert len(whitening) == int(bool(config.model.get("whiten")))
  data = DATASETS[e.data]
  assert [ev.kind for ev in config.evals.values()].count("revisited") == len(data.also_reads)
