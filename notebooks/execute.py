"""Runs a notebook headlessly with parameters, or strips its outputs.

  python notebooks/execute.py notebooks/quickstart.ipynb -p TOTAL_STEPS=20 -o /tmp/executed.ipynb
  python notebooks/execute.py --strip notebooks/quickstart.ipynb

Parameters follow papermill's convention: a code cell tagged ``parameters`` holds the defaults, and
the overrides go into a new cell (tagged ``injected-parameters``) right after it, so that every later
cell sees them. Values are Python literals (``-p WORKDIR='"/tmp/run"'``) or bare strings.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Mapping
from typing import Any

import nbformat

__all__ = ["inject_parameters", "execute", "strip_outputs", "has_outputs"]


def inject_parameters(nb, parameters: Mapping[str, Any]):
  """``nb`` with a cell assigning ``parameters`` after its ``parameters``-tagged cell (in place).

  Raises:
    ValueError: the notebook has no cell tagged ``parameters``, or a name it does not define there.
  """
  position = next((i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])), None)
  if position is None:
    raise ValueError("the notebook has no code cell tagged 'parameters'")
  defined = {
    target.id
    for node in ast.parse(nb.cells[position].source).body
    if isinstance(node, ast.Assign)
    for target in node.targets
    if isinstance(target, ast.Name)
  }
  unknown = sorted(set(parameters) - defined)
  if unknown:
    raise ValueError(f"parameters {unknown} are not defined in the 'parameters' cell (it defines {sorted(defined)})")
  source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
  cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
  nb.cells.insert(position + 1, cell)
  return nb


def execute(
  path: str,
  parameters: Mapping[str, Any] | None = None,
  *,
  timeout: int = 600,
  env: Mapping[str, str] | None = None,
  cwd: str | None = None,
):
  """Executes the notebook at ``path`` in a fresh ``python3`` kernel and returns it with its outputs.

  Raises:
    nbclient.exceptions.CellExecutionError: a cell failed (the message holds its traceback).
  """
  import nbclient  # pylint: disable=g-import-not-at-top

  nb = nbformat.read(path, as_version=4)
  if parameters:
    inject_parameters(nb, parameters)
  client = nbclient.NotebookClient(
    nb,
    timeout=timeout,
    kernel_name="python3",
    resources={"metadata": {"path": cwd or os.path.dirname(os.path.abspath(path))}},
  )
  client.execute(env=dict(os.environ if env is None else env))
  return nb


def has_outputs(nb) -> bool:
  """Whether any code cell holds outputs or an execution count."""
  return any(
    cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None) for cell in nb.cells
  )


def strip_outputs(path: str):
  """Removes every output and execution count of the notebook at ``path`` (in place)."""
  nb = nbformat.read(path, as_version=4)
  for cell in nb.cells:
    if cell.cell_type == "code":
      cell.outputs, cell.execution_count = [], None
  nbformat.write(nb, path)


def _value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("notebook")
  parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
  parser.add_argument("-o", "--output", help="where to write the executed notebook")
  parser.add_argument("--strip", action="store_true", help="only strip the notebook's outputs, in place")
  args = parser.parse_args(argv)
  if args.strip:
    strip_outputs(args.notebook)
    return
  parameters = {}
  for item in args.param:
    name, sep, value = item.partition("=")
    if not sep:
      sys.exit(f"error: -p {item!r}: expected NAME=VALUE")
    parameters[name] = _value(value)
  nb = execute(args.notebook, parameters)
  if args.output:
    nbformat.write(nb, args.output)


if __name__ == "__main__":
  main()
