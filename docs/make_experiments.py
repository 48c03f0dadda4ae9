"""Writes docs/experiments.md and the experiments' config files from the experiment table.

    python3 docs/make_experiments.py          # writes docs/experiments.md and suprank_jax/configs/<family>/<file>.py
    python3 docs/make_experiments.py --check  # exits 1, naming the files that differ from the table

The table is ``suprank_jax/configs/experiments/`` (one module per family); a new experiment is a record
there, then this script. tests/test_experiment_table.py checks that the files equal this script's output.
"""

import argparse
import dataclasses
import os
import re
import sys

from suprank_jax.configs import experiments
from suprank_jax.configs.experiments import DATASETS, PAPERS, REPOSITORIES, WEIGHTS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join("docs", "experiments.md")

_PREAMBLE = """\
Every experiment of the original repositories is a record of the experiment table
(`suprank_jax/configs/experiments/`, one module per family) and a config file
`suprank_jax/configs/<family>/<file>.py` that takes its `get_config` from that record. Each entry
names the paper and its table, the published figure where this repository could read one (the
papers' own tables were not readable here: figures marked "not read here" must be taken from the
paper), the one run it reproduces (a README's command, or the original's config files it composes
where no README gives a command), its composition (the groups of `suprank_jax/configs/groups/` and
the settings that differ from `experiment.compose`'s defaults), the data set and weights it needs,
and its command. The experiments log both our metrics and the original evaluation code's numbers
(`original/<key>`, see [Where our numbers differ](differences.md)).

The commands' folders are examples: `/data/...` holds a data set in its original layout (see
[Data sets](#data-sets)), `/weights/...` a torchvision / timm state dict (nothing is downloaded; see
[Pretrained weights](training.md#pretrained-weights)).
"""


def _slug(heading: str) -> str:
  """The anchor GitHub gives a heading."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _source(e) -> str:
  s = e.source
  repository = f"[{REPOSITORIES[s.repository]}](https://github.com/{REPOSITORIES[s.repository]})"
  if s.readme:
    return f"{repository}, its README ({s.readme}): `{s.text}`"
  return f"{repository}, its config files `{s.text}` (no README gives a command for this run)"


def _composition(e) -> str:
  parts = [f"{kind}={name}" for kind, name in e.groups.items()]
  defaults = {f.name: f.default for f in dataclasses.fields(experiments.Experiment)}
  for key in ("epochs", "freeze_epochs", "hierarchy_levels", "seed", "batch_size", "batches_per_super_tuple"):
    if getattr(e, key) != defaults[key]:
      parts.append(f"{key}={getattr(e, key)}")
  parts += [getattr(step, "func", step).__name__ for step in e.finish]
  return ", ".join(f"`{p}`" for p in parts)


def _data(e) -> str:
  data = DATASETS[e.data]
  folders = [data] + [DATASETS[key] for key in data.also_reads]
  return "; ".join(f"[{d.title}](#{_slug(d.title)}) under `--{d.flag}`" for d in folders)


def _weights(e) -> str:
  if not e.weights:
    return "none (trained from scratch, as the original)"
  return "; ".join(f"{WEIGHTS[w].about} (`{w}`, `--{WEIGHTS[w].flag}`)" for w in e.weights)


def entry(e) -> str:
  """One experiment's section of the page."""
  paper = PAPERS[e.paper].citation
  lines = [
    f"### {e.title}",
    "",
    f"- Config: `{e.path}`",
    f"- Paper: {paper}, {e.table}",
    f"- Published: {e.published}",
    f"- Source: {_source(e)}",
    f"- Composition: {_composition(e)}",
    f"- Data: {_data(e)}",
    f"- Weights: {_weights(e)}",
  ]
  if e.notes:
    lines += ["", e.notes]
  return "\n".join(lines + ["", "```bash", e.command(), "```", ""])


def page() -> str:
  """The whole of docs/experiments.md."""
  out = [
    "# Experiments",
    "",
    "<!-- Generated from suprank_jax/configs/experiments/ by docs/make_experiments.py: edit the table, not this page. -->",
    "",
    _PREAMBLE,
  ]
  for family in experiments.FAMILIES.values():
    out.append(f"- [{family.TITLE}](#{_slug(family.TITLE)})")
  out += ["- [Data sets](#data-sets)", ""]
  for family in experiments.FAMILIES.values():
    out += [f"## {family.TITLE}", ""]
    if family.INTRO:
      out += [family.INTRO]
    out += [entry(e) for e in family.EXPERIMENTS]
  out += ["## Data sets", "", "Each in its original on-disk layout, under the folder its flag gives.", ""]
  for d in DATASETS.values():
    out += [f"### {d.title}", "", f"`--{d.flag}` (e.g. `{d.data_dir}`): {d.layout}", ""]
  return "\n".join(out).rstrip("\n") + "\n"


def config_file(e) -> str:
  """The text of the experiment's config file, ``suprank_jax/configs/<family>/<file>.py``."""
  return (
    f'"""{e.title} (``{e.name}``): its record is in suprank_jax/configs/experiments/{e.family}.py."""\n\n'
    "from suprank_jax.configs import experiments\n\n"
    f'get_config = experiments.EXPERIMENTS["{e.name}"].get_config\n'
  )


def outputs() -> dict[str, str]:
  """``{path relative to the repository: text}`` of every file this script writes."""
  files = {PAGE: page()}
  files.update({e.path: config_file(e) for e in experiments.EXPERIMENTS.values()})
  return files


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file differs")
  args = parser.parse_args(argv)
  stale = []
  for path, text in outputs().items():
    full = os.path.join(REPO, path)
    old = open(full, encoding="utf-8").read() if os.path.exists(full) else None
    if old == text:
      continue
    stale.append(path)
    if not args.check:
      with open(full, "w", encoding="utf-8") as f:
        f.write(text)
  verb = "differ from the table" if args.check else "written"
  print(f"{len(stale)} files {verb}" + "".join(f"\n  {p}" for p in stale))
  return 1 if args.check and stale else 0


if __name__ == "__main__":
  sys.exit(main())
