"""One writer per dataset: ``_lock.json`` in the output folder while a run lasts.

The lock is created atomically (``O_CREAT | O_EXCL``) and holds the host, pid
and start time of its holder. A second run is refused at once, naming the
holder; a lock whose process is gone (same host, no such pid, or a zombie) is
broken with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import OutputError

LOCK = "_lock.json"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _holder(path: str) -> dict:
    try:
        with open(path) as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def acquire(out: str) -> str:
    """Take the lock of ``out`` (a folder, created if needed); return the lock file's path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, LOCK)
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            same_host = holder.get("host") == me["host"]
            pid = holder.get("pid")
            if same_host and isinstance(pid, int) and not _alive(pid):
                warnings.warn(
                    f"breaking the stale lock {path} of pid {pid} on {holder['host']} "
                    f"(started {holder.get('started', '?')}): that process is gone",
                    stacklevel=3,
                )
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
                continue
            raise OutputError(
                f"output '{out}' is being written by another run (host {holder.get('host', '?')}, "
                f"pid {pid if pid is not None else '?'}, started {holder.get('started', '?')}); "
                f"wait for it to end, or remove {path} if that run is gone"
            ) from None
        except OSError as err:
            raise OutputError(f"cannot create the lock file '{path}' ({_errno(err)})") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
            f.write("\n")
        return path
    raise OutputError(f"cannot take the lock '{path}': other runs keep taking it")


def release(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


@contextmanager
def locked(out: str) -> Iterator[str]:
    """Hold the lock of ``out`` for the block (a folder made for it and left empty goes too)."""
    made = not os.path.isdir(out)
    path = acquire(out)
    try:
        yield path
    finally:
        release(path)
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(out)


def _errno(err: OSError) -> str:
    import errno

    name = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else "?"
    return f"{name}: {err.strerror or err}"
