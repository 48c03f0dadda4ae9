"""Which keys of a config a run reads: catches a key that is set and then silently unused.

``KeyAudit(config)`` patches ``ConfigDict.__getitem__`` (through which attribute access, ``get``,
``items`` and ``dict(cfg)`` all go) while it is active and records the dotted path of every value
read from ``config``'s tree, including reads on copies made with ``copy_and_resolve_references``
(the trainer copies ``config.input`` for an evaluation of another data set, and ``config.optim``).
Serialising the config (``to_dict``, ``to_json_best_effort``) does not count as reading it.
"""

from __future__ import annotations

import contextlib
import threading

from ml_collections import config_dict

__all__ = ["KeyAudit", "leaves", "set_keys"]

_ConfigDict = config_dict.ConfigDict


def leaves(config, prefix: str = "") -> dict:
  """``{dotted path: value}`` of every non-ConfigDict value of ``config``."""
  out = {}
  for key in config:
    value = config[key]
    path = f"{prefix}{key}"
    if isinstance(value, _ConfigDict):
      out.update(leaves(value, path + "."))
    else:
      out[path] = value
  return out


def set_keys(config, defaults) -> set[str]:
  """The leaves of ``config`` absent from ``defaults`` or with another value."""
  base = leaves(defaults)
  return {path for path, value in leaves(config).items() if path not in base or base[path] != value}


class KeyAudit(contextlib.AbstractContextManager):
  """Records the leaves of ``config`` read while the context is active (``audit.read``)."""

  def __init__(self, config):
    self.read: set[str] = set()
    self._paths: dict[int, str] = {}
    self._nodes = []  # keeps the registered nodes alive so that their ids stay theirs
    self._register(config, "")
    self._local = threading.local()
    self._saved = {}

  def _register(self, node, prefix):
    self._paths[id(node)] = prefix
    self._nodes.append(node)
    for key in node:
      value = node._fields[key]  # pylint: disable=protected-access
      if isinstance(value, _ConfigDict):
        self._register(value, f"{prefix}{key}.")

  def _register_copy(self, original, copy):
    prefix = self._paths.get(id(original))
    if prefix is None:
      return
    self._paths[id(copy)] = prefix
    self._nodes.append(copy)
    for key in copy:
      a, b = original._fields.get(key), copy._fields[key]  # pylint: disable=protected-access
      if isinstance(a, _ConfigDict) and isinstance(b, _ConfigDict):
        self._register_copy(a, b)

  def __enter__(self):
    audit = self
    getitem, copy = _ConfigDict.__getitem__, _ConfigDict.copy_and_resolve_references
    to_dict, to_json = _ConfigDict.to_dict, _ConfigDict.to_json_best_effort
    self._saved = dict(
      __getitem__=getitem, copy_and_resolve_references=copy, to_dict=to_dict, to_json_best_effort=to_json
    )

    def recording_getitem(node, key):
      value = getitem(node, key)
      if not getattr(audit._local, "muted", 0) and isinstance(key, str):
        prefix = audit._paths.get(id(node))
        if prefix is not None and not isinstance(value, _ConfigDict):
          audit.read.add(prefix + key)
      return value

    def muted(method):
      def call(node, *args, **kwargs):
        audit._local.muted = getattr(audit._local, "muted", 0) + 1
        try:
          return method(node, *args, **kwargs)
        finally:
          audit._local.muted -= 1

      return call

    def recording_copy(node, *args, **kwargs):
      result = muted(copy)(node, *args, **kwargs)
      audit._register_copy(node, result)
      return result

    _ConfigDict.__getitem__ = recording_getitem
    _ConfigDict.copy_and_resolve_references = recording_copy
    _ConfigDict.to_dict = muted(to_dict)
    _ConfigDict.to_json_best_effort = muted(to_json)
    return self

  def __exit__(self, *exc):
    for name, method in self._saved.items():
      setattr(_ConfigDict, name, method)
    return False

  def unread(self, keys) -> list[str]:
    """The keys among ``keys`` that were not read (a parent read counts for its whole subtree)."""
    return sorted(k for k in keys if k not in self.read and not any(k.startswith(r + ".") for r in self.read))
