"""One run per workdir: an exclusive ``flock`` on a file in the workdir, held for the whole run.

The operating system releases the lock when the process ends, however it ends (a crash, ``kill -9``, a
lost node), so a lock never outlives its run and there is nothing stale to clean up. The file names the
holder (host, pid, start time, command) for the message a second run prints. In a multi-process run every
process takes its own lock file (``.lock`` for process 0, ``.lock.process<i>`` for the others), so each
process of a second run on the same workdir stops at once, and no process waits on a lock held by another
process of its own run.

Where the file system has no ``flock`` (some network file systems), the run goes on with a warning: two
runs on the workdir would then not be detected.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import sys

__all__ = ["WorkdirLock", "WorkdirBusyError", "lock_path"]


class WorkdirBusyError(OSError):
  """Another run holds the workdir (the message names it)."""


def lock_path(workdir: str, process_index: int = 0) -> str:
  name = ".lock" if process_index == 0 else f".lock.process{process_index}"
  return os.path.join(workdir, name)


def _describe(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      holder = json.load(f)
    return f"pid {holder['pid']} on host {holder['host']}, started {holder['started']} ({holder.get('command', '?')})"
  except (OSError, ValueError, KeyError):
    return "a process that has not written its name yet"


class WorkdirLock:
  """``with WorkdirLock(workdir, process_index=i, log=print): ...`` holds ``workdir`` for this process.

  Raises:
    WorkdirBusyError: on entry, when another process holds the lock; the message names it.
  """

  def __init__(self, workdir: str, *, process_index: int = 0, log=print):
    self.path = lock_path(os.path.abspath(workdir), process_index)
    self._log = log
    self._file = None

  def acquire(self):
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    f = open(self.path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
    try:
      fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      f.close()
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise WorkdirBusyError(
          f"the workdir {os.path.dirname(self.path)} is in use by another run: {_describe(self.path)} (lock "
          f"file {self.path}). Wait for it to end, stop it, or use another --workdir"
        ) from e
      self._log(
        f"warning: cannot lock the workdir ({self.path}: {e.strerror}); a second run on this workdir "
        "would not be detected"
      )
      return self
    f.seek(0)
    f.truncate()
    json.dump(
      {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:500],
      },
      f,
    )
    f.flush()
    self._file = f
    return self

  def release(self):
    if self._file is not None:
      # The file stays: deleting it would let a process that opened it just before lock a file nobody
      # else can see. Its contents only matter while it is locked.
      fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
      self._file.close()
      self._file = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
