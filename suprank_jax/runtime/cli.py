"""The command lines' conventions for anticipated failures: one line, no traceback, a non-zero status.

``train`` and ``evaluate`` run their work under :func:`user_errors`, and parse their flags with
:func:`parse_flags`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback

from absl import app

__all__ = ["user_errors", "parse_flags", "Exit", "ANTICIPATED"]

# Failures whose message names what to fix (a key, a file, a step): configuration and data errors,
# missing or unwritable files, a non-finite loss or state.
ANTICIPATED = (ValueError, OSError, FloatingPointError)


class Exit(Exception):
  """An anticipated end with its own exit status, e.g. a run stopped by a signal (128 + its number).

  The message is printed as is, on stderr.
  """

  def __init__(self, message: str, exit_code: int):
    super().__init__(message)
    self.exit_code = exit_code


def _end(message: str, code: int, *, abandon_threads: bool = False):
  """Prints ``message`` and ends the process with ``code``.

  After a failed checkpoint write (an error with ``abandons_threads``), orbax's writer threads wait
  forever, and the interpreter would wait for them at exit (holding a cluster allocation until its
  time limit): with ``abandon_threads``, when a non-daemon thread is still alive, the process ends
  without joining it. Otherwise the end is a ``SystemExit``, which a caller (a notebook, a test) may
  catch.
  """
  others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
  if abandon_threads and others:
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(code)  # pylint: disable=protected-access
  if code == 1:
    sys.exit(message)  # SystemExit carries the message (callers and tests read it there)
  print(message, file=sys.stderr, flush=True)
  sys.exit(code)


@contextlib.contextmanager
def user_errors():
  """Turns an anticipated failure into ``error: <message>`` and exit status 1 (an :class:`Exit` into its
  message and status, Ctrl-C into status 130). ``SUPRANK_TRACEBACK=1`` prints the traceback first."""
  try:
    yield
  except Exit as e:
    _end(str(e), e.exit_code)
  except KeyboardInterrupt:
    if os.environ.get("SUPRANK_TRACEBACK"):
      traceback.print_exc()
    _end("error: interrupted", 130)
  except ANTICIPATED as e:
    abandon = bool(getattr(e, "abandons_threads", False))
    if os.environ.get("SUPRANK_TRACEBACK"):
      traceback.print_exc()
      _end(f"error: {e}", 1, abandon_threads=abandon)
    _end(f"error: {e}\n(set SUPRANK_TRACEBACK=1 for the full traceback)", 1, abandon_threads=abandon)


def parse_flags(argv):
  """absl's parser, plus one-line errors for bad ``--config.*`` overrides (ml_collections raises plain
  AttributeError/KeyError/TypeError/ValueError from inside the flag parser)."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    message = str(e).replace("\\n", " ").replace("\n", " ").replace("\\", "").replace("'", "").strip('" ')
    sys.exit(f"error: bad config override: {message}")
