"""nudask's side of bench_preprocess: one ``run_chunk`` over a file's first events, timed.

nudask is imported inside the functions, so that the same code times another checkout's
nudask when that checkout comes first on ``sys.path`` (``bench_preprocess --against``)::

    python tests/benchmarks/bench_chunk.py OTHER_ROOT INPUT.h5 N_EVENTS OUT_DIR [--repeats R]

prints one JSON line: the seconds of each timed pass (float32 values, after a warm-up pass
on one event), the part's bytes for each value storage the checkout has, and its version.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time

# value storages by name: preprocess' options for each (float16 only where plan() takes values=)
STORAGES = {"float32": {}, "float16": {"values": "float16"}, "eight_bit": {"eight_bit": True}}


def has_values_option() -> bool:
    """Whether this nudask's preprocessing takes ``values="float16"`` (the float16 storage)."""
    from nudask.pipeline import plan

    return "values" in inspect.signature(plan).parameters


def storages() -> list[str]:
    """The value storages this nudask can write, of :data:`STORAGES`."""
    return [s for s in STORAGES if s != "float16" or has_values_option()]


def time_chunk(path: str, n_events: int, out: str, storage: str = "float32") -> tuple[float, dict]:
    """Seconds of ``run_chunk`` on events ``[0, n_events)`` (setup not timed); extras: the part."""
    from nudask import config
    from nudask.events import Chunk
    from nudask.pipeline import plan, run_chunk
    from nudask.readers import get_reader

    options = dict(STORAGES[storage])
    options.setdefault("eight_bit", False)
    reader = get_reader("microboone")
    schema = plan([path], reader, events_per_chunk=n_events, on_error="raise", **options).schema
    try:  # what preprocess() writes with: the configuration, else the reader's hints
        from nudask.pipeline import _settings

        settings = _settings(None, False, None, None, None, getattr(reader, "storage_hints", {}))[1]
    except (ImportError, TypeError):  # older checkouts
        settings = {
            k: config.get(f"storage.{k.replace('_', '-')}")
            for k in ("row_group_events", "compression", "compression_level")
        }
    chunk = Chunk(path, reader.name, 0, n_events)
    # older checkouts: run_chunk took one chunk (not a tuple) and returned a dict
    kw = {"on_error": "raise"} if "on_error" in inspect.signature(run_chunk).parameters else {}
    task = (chunk,) if "ChunkResult" in str(inspect.signature(run_chunk).return_annotation) else chunk
    t0 = time.perf_counter()
    result = run_chunk(task, reader=reader, out=out, schema=schema, storage=settings, **kw)
    seconds = time.perf_counter() - t0
    part = result.part if hasattr(result, "part") else None
    name = part.name if part is not None else result["file"]["name"]
    size = part.bytes if part is not None else result["file"]["bytes"]
    return seconds, {"bytes": size, "file": os.path.join(out, name)}


def git_commit(folder: str) -> str:
    """``git describe`` of the checkout holding ``folder`` ("?" outside one)."""
    try:
        return subprocess.run(
            ["git", "-C", folder, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def version() -> str:
    """``nudask VERSION, git COMMIT`` of the nudask imported."""
    import nudask

    root = os.path.dirname(os.path.abspath(nudask.__file__))
    return f"nudask {nudask.__version__} at {os.path.dirname(root)}, git {git_commit(root)}"


def other_checkout(root: str, path: str, n_events: int, out: str, repeats: int = 1) -> dict:
    """:func:`main` in a fresh process with ``root``'s nudask: its seconds, bytes and version."""
    env = dict(os.environ, PYTHONPATH=root)
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        root,
        path,
        str(n_events),
        out,
        "--repeats",
        str(repeats),
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the checkout at {root} failed the chunk benchmark: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", help="the checkout whose nudask to time")
    ap.add_argument("input")
    ap.add_argument("events", type=int)
    ap.add_argument("out")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args(argv)
    sys.path.insert(0, os.path.abspath(a.root))
    os.makedirs(a.out, exist_ok=True)
    time_chunk(a.input, 1, a.out)  # warm-up: imports, first allocations
    seconds = [time_chunk(a.input, a.events, a.out)[0] for _ in range(a.repeats)]
    sizes = {s: time_chunk(a.input, a.events, a.out, s)[1]["bytes"] for s in storages()}
    print(json.dumps({"seconds": seconds, "bytes": sizes, "version": version()}))


if __name__ == "__main__":
    main()
