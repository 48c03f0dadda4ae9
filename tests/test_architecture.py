"""The package's shape: layers that import only downwards, no import circle, small modules and functions.

The layers, lowest first (a module imports its own layer or lower ones, never a higher one):

0. ``hierarchy``, ``steps``: label levels; run lengths and the epoch plan.
1. ``losses``, ``models``, ``input_pipeline``, ``optim``: the numerical core.
2. ``runtime``: the process the others run in (device mesh, logs and progress, command-line exits).
3. ``evaluation``: metrics, search and the evaluators.
4. ``configs``: the experiments, composed from the core's defaults.
5. ``training``, ``index``: the trainer, and the index application (export, search).
6. the commands ``train``, ``evaluate``, ``export``, ``search`` (``python -m suprank_jax.<command>``).

Imports inside functions count too: a lazy import is still a dependency.
"""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "suprank_jax")
LAYERS = {
  "hierarchy": 0,
  "steps": 0,
  "losses": 1,
  "models": 1,
  "input_pipeline": 1,
  "optim": 1,
  "runtime": 2,
  "evaluation": 3,
  "configs": 4,
  "training": 5,
  "index": 5,
  "train": 6,
  "evaluate": 6,
  "export": 6,
  "search": 6,
}
MAX_TOP_LEVEL_MODULES = 8
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def _modules():
  """``{dotted name: path}`` of every module of the package."""
  out = {}
  for root, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        parts = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
        if parts[-1] == "__init__":
          parts = parts[:-1]
        out[".".join(parts)] = path
  return out


MODULES = _modules()


def _imports(path: str) -> set[str]:
  """The package's modules that ``path`` imports (``from a import b`` counts ``a.b`` when it is a module)."""
  found = set()
  for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        found.add(submodule if submodule in MODULES else node.module)
  return {m for m in found if m in MODULES}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _layer(module: str) -> int:
  parts = module.split(".")
  return LAYERS[parts[1]] if len(parts) > 1 else max(LAYERS.values())


def test_every_top_level_name_has_a_layer():
  top = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
  assert top <= set(LAYERS), f"give {sorted(top - set(LAYERS))} a layer in this test (and in its docstring)"


def test_no_module_imports_a_higher_layer():
  upward = sorted(
    f"{a} ({_layer(a)}) imports {b} ({_layer(b)})"
    for a, deps in GRAPH.items()
    for b in deps
    if _layer(b) > _layer(a) and not (a == "suprank_jax" or b.startswith(a + "."))
  )
  assert not upward, "imports back up:\n  " + "\n  ".join(upward)


def _cycle():
  """One import circle (a list of modules), or None. A package's ``__init__`` importing its own
  submodules is not a circle with them."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for dep in sorted(GRAPH[node]):
      if dep.startswith(node + ".") or node.startswith(dep + "."):
        continue  # a package and its own submodules
      if state.get(dep) == "open":
        return stack[stack.index(dep) :] + [dep]
      if dep not in state:
        found = visit(dep)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(GRAPH):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_no_import_circle():
  cycle = _cycle()
  assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_few_modules_directly_under_the_package():
  top = sorted(n for n in os.listdir(PACKAGE) if n.endswith(".py"))
  assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_are_small(module):
  text = open(MODULES[module], encoding="utf-8").read()
  assert text.count("\n") <= MAX_MODULE_LINES, f"{module}: {text.count(chr(10))} lines"
  long = [
    f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
    for node in ast.walk(ast.parse(text))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
  ]
  assert not long, f"{module}: {long}"
