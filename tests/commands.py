"""The project's commands run in a subprocess, as a user types them: ``python -m suprank_jax.<command> ...``.

One place for what every command test needs: the repository as the working folder, JAX on the CPU, and
XLA's optimisations off (``JAX_DISABLE_MOST_OPTIMIZATIONS``: the tiny programs of the tests compile
faster than their optimisation saves; the numbers stay float32).
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_env(*, fake_devices: bool = True, **extra) -> dict:
  """The environment of a command: CPU, no XLA optimisations, ``extra`` on top; ``fake_devices=False``
  drops the suite's eight fake CPU devices (``XLA_FLAGS`` of ``tests/conftest.py``)."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1", **extra}
  if not fake_devices:
    env.pop("XLA_FLAGS", None)
  return env


def module_command(module: str, *args) -> list[str]:
  """``python -m suprank_jax.<module> args...`` as an argument list."""
  return [sys.executable, "-m", f"suprank_jax.{module}", *map(str, args)]


def run_command(module: str, *args, timeout: float = 300, env: dict | None = None, **kwargs):
  """Runs ``python -m suprank_jax.<module> args...`` in the repository; returns the finished process
  (``returncode``, ``stdout``, ``stderr`` as text)."""
  return subprocess.run(
    module_command(module, *args),
    cwd=REPO,
    env=command_env() if env is None else env,
    capture_output=True,
    text=True,
    timeout=timeout,
    **kwargs,
  )
