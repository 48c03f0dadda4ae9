"""The command lines' convention for errors a user can fix: one line, no traceback."""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["user_errors"]


@contextlib.contextmanager
def user_errors():
  """Turns a ValueError or FileNotFoundError (whose message names the key or file at fault) into
  ``error: <message>`` and exit status 1; ``SUPRANK_TRACEBACK=1`` re-raises it with its traceback."""
  try:
    yield
  except (ValueError, FileNotFoundError) as e:
    if os.environ.get("SUPRANK_TRACEBACK"):
      raise
    sys.exit(f"error: {e}\n(set SUPRANK_TRACEBACK=1 for the full traceback)")
