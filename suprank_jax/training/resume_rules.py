"""What a run may change in its config when it resumes from its workdir's checkpoints.

A workdir holds one run: its ``config.yaml`` describes its checkpoints. Re-running the workdir with
another config resumes only when every changed key is one a resume may change
(:data:`RESUME_MAY_CHANGE`): the run's length, how it reports, saves and evaluates, where its data
lives. Any other change (the model, losses, optimizer, data, seed) would make the checkpoints the
state of another run, and stops the run with the keys that differ, unless the user says so explicitly
(``--allow_config_change``, ``train_and_evaluate(..., allow_config_change=True)``).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

__all__ = [
  "RESUME_MAY_CHANGE",
  "ConfigChangedError",
  "flatten",
  "differences",
  "check_resume_config",
]

# Dotted config keys (fnmatch patterns) whose value may differ from the run's config on a resume.
RESUME_MAY_CHANGE = (
  # The run's length (the learning-rate schedule follows the new length).
  "total_steps",
  "num_epochs",
  # How the run reports, saves and evaluates.
  "log_every_steps",
  "eval_every_steps",
  "eval_every_epochs",
  "eval_at_start",
  "checkpoint_every_steps",
  "checkpoint_every_epochs",
  "checkpoint_every_minutes",
  "keep_checkpoints",
  "tensorboard",
  "evals.*",
  "overall_accuracy_over",
  # Read only on a fresh start.
  "resume",
  "model.pretrained",
  "model.pretrained_path",
  # Where the data lives and how it is loaded (not what it is).
  "input.data_dir",
  "input.num_workers",
  "input.num_threads",
  "input.prefetch_batches",
)


class ConfigChangedError(ValueError):
  """The config differs from the run's in keys a resume may not change."""


def _plain(value):
  """JSON-shaped values: tuples as lists, so that a config and its YAML compare equal."""
  return json.loads(json.dumps(value, default=str))


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """``{"a.b.c": leaf}`` of nested dicts (lists are leaves)."""
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(flatten(value, f"{prefix}{key}."))
    return out if out or not prefix else {prefix[:-1]: {}}
  return {prefix[:-1]: tree}


def differences(run_config: dict, config: dict) -> dict[str, tuple[Any, Any]]:
  """``{key: (run's value, new value)}`` of the keys that differ (``<absent>`` on one side)."""
  old, new = flatten(_plain(run_config)), flatten(_plain(config))
  absent = "<absent>"
  return {
    k: (old.get(k, absent), new.get(k, absent))
    for k in sorted(set(old) | set(new))
    if old.get(k, absent) != new.get(k, absent)
  }


def _allowed(key: str) -> bool:
  return any(fnmatch.fnmatchcase(key, pattern) for pattern in RESUME_MAY_CHANGE)


def check_resume_config(
  run_config: dict, config: dict, *, where: str, allow: bool = False, log=print, defaults: dict | None = None
) -> dict:
  """Compares a resumed run's config with the run's own.

  A key the code gained since the run (absent from the run's config) is no change when it has its
  default value, and a key the code dropped (absent from the config now) is no change either: the code
  cannot read it.

  Args:
    run_config: the run's config (``config.yaml``), as a dict.
    config: the config given now, as a dict (``ConfigDict.to_dict()``).
    where: the file ``run_config`` comes from, for messages.
    allow: accept any change (the user's explicit ``--allow_config_change``).
    log: where the accepted changes are reported.
    defaults: nested dict of default values (for keys the code gained).

  Returns:
    ``{key: (old, new)}`` of the changes (all accepted).

  Raises:
    ConfigChangedError: listing each key that a resume may not change, with both values.
  """
  absent = "<absent>"
  flat_defaults = flatten(_plain(defaults or {}))
  changed = {
    k: (old, new)
    for k, (old, new) in differences(run_config, config).items()
    if new != absent and not (old == absent and k in flat_defaults and flat_defaults[k] == new)
  }
  refused = {k: v for k, v in changed.items() if not _allowed(k)}
  if refused and not allow:
    shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(refused.items())[:10])
    more = f" (and {len(refused) - 10} more)" if len(refused) > 10 else ""
    raise ConfigChangedError(
      f"this workdir holds the checkpoints of a run with another config ({where}): {shown}{more}. A resume "
      f"may change only {', '.join(RESUME_MAY_CHANGE)}. Use another --workdir for a new run, or pass "
      "--allow_config_change to resume with these changes anyway"
    )
  if changed:
    log(
      "config changes on resume"
      + (" (allowed by --allow_config_change)" if refused else "")
      + ": "
      + "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
    )
  return changed
