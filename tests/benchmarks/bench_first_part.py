"""Time to first part: how long a user waits for the first Parquet file of a run.

Two ways in, each in a fresh process (interpreter start and imports counted), the output
folder polled every few milliseconds for the first ``part-*.parquet``:

  command   ``python -m nudask preprocess INPUT --out OUT`` (what users type; its local
            cluster of one worker per core); seconds from the process start;
  call      ``nudask.preprocess(INPUT, OUT)`` in a script; seconds from the process start
            and from the call (imports done before it).

For each, the first task's own compute (``chunk_seconds`` of the run log, the reader and
writer at work) is given beside it: the rest is the fixed cost this benchmark is about.
``--profile`` also prints the command's slowest imports (``python -X importtime``) and the
driver's cumulative profile (cProfile), by function. ``--against DIR`` runs another
checkout's nudask (e.g. ``git worktree add /tmp/prev HEAD~1``) the same way, alternated.

    .venv/bin/python tests/benchmarks/bench_first_part.py INPUT.h5 [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
POLL_S = 0.005

# run in the child: the wall-clock time of the call on stdout, then the call itself
CALL = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import nudask.pipeline
print(time.time(), flush=True)
nudask.pipeline.preprocess(sys.argv[2], sys.argv[3], overwrite=True, progress=False)
"""


def first_part(out: str, proc: subprocess.Popen) -> float | None:
    """Wall-clock time when the first part file shows in ``out`` (None if ``proc`` ends first)."""
    while True:
        if os.path.isdir(out):
            with os.scandir(out) as entries:
                if any(e.name.startswith("part-") and e.name.endswith(".parquet") for e in entries):
                    return time.time()
        if proc.poll() is not None:
            return None
        time.sleep(POLL_S)


def child_env(root: str) -> dict[str, str]:
    """The environment of a run of the checkout at ``root`` (its nudask first on the path)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("CUDA_VISIBLE_DEVICES", "")  # no device probing in the figures
    return env


def run_log_first_task(out: str) -> float | None:
    """The shortest task's compute seconds in the run log (the first task's, for one-task runs)."""
    try:
        with open(os.path.join(out, "_run_log.json")) as fh:
            return json.load(fh)["extra"]["chunk_seconds"]["min"]
    except (OSError, KeyError, ValueError):
        return None


def time_command(root: str, path: str, out: str, python_flags: tuple[str, ...] = ()) -> dict:
    """One ``nudask preprocess`` command: seconds to the first part and to the end."""
    argv = [sys.executable, *python_flags, "-m", "nudask", "preprocess", path, "--out", out, "--overwrite"]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: -X importtime fills a pipe
        t0 = time.time()
        proc = subprocess.Popen(argv, env=child_env(root), stdout=subprocess.DEVNULL, stderr=err)
        seen = first_part(out, proc)
        proc.wait()
        end = time.time()
        err.seek(0)
        stderr = err.read()
    if proc.returncode or seen is None:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    return {"first_part": seen - t0, "end": end - t0, "task": run_log_first_task(out), "stderr": stderr}


def time_call(root: str, path: str, out: str) -> dict:
    """One ``preprocess()`` call in a fresh script: from the process start and from the call."""
    with tempfile.TemporaryFile() as log:
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-c", CALL, root, path, out], env=child_env(root),
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        seen = first_part(out, proc)
        proc.wait()
        end = time.time()
        log.seek(0)
        text = log.read().decode(errors="replace")
    if proc.returncode or seen is None:
        raise RuntimeError(f"preprocess() in {root} failed ({proc.returncode}): {text[-2000:]}")
    called = float(text.split()[0])
    return {
        "first_part": seen - t0,
        "from_call": seen - called,
        "imports": called - t0,
        "end": end - t0,
        "task": run_log_first_task(out),
    }


def measure(roots: dict[str, str], path: str, repeats: int, tmp: str) -> dict[str, dict[str, float]]:
    """Medians per checkout of :func:`time_command` and :func:`time_call`, runs alternated."""
    runs: dict[str, dict[str, list[float]]] = {side: {} for side in roots}
    for rep in range(repeats):
        for side, root in roots.items():
            out = os.path.join(tmp, f"{side}-{rep}")
            cmd = time_command(root, path, out + "-command")
            call = time_call(root, path, out + "-call")
            got = {
                "command: first part": cmd["first_part"],
                "command: end": cmd["end"],
                "call: first part, from process start": call["first_part"],
                "call: first part, from the call": call["from_call"],
                "call: imports before the call": call["imports"],
                "first task's own compute": call["task"] or float("nan"),
            }
            for k, v in got.items():
                runs[side].setdefault(k, []).append(v)
            print(
                f"  first part, {side}, repeat {rep + 1}/{repeats}: command {cmd['first_part']:.2f} s, "
                f"call {call['from_call']:.2f} s after it",
                flush=True,
            )
    return {side: {k: statistics.median(v) for k, v in got.items()} for side, got in runs.items()}


# -- profile ------------------------------------------------------------------
def slowest_imports(stderr: bytes, top: int = 12) -> list[tuple[str, float]]:
    """Top-level-ish modules by cumulative import seconds from ``-X importtime`` output.

    >>> text = b"import time: self [us] | cumulative | imported package\\n"
    >>> text += b"import time:       100 |        900 |   numpy\\nimport time: 5 | 2000 | nudask.cli\\n"
    >>> slowest_imports(text)
    [('nudask.cli', 0.002), ('  numpy', 0.0009)]
    """
    rows = []
    for line in stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|", 2)
        rows.append((name.rstrip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:top]


def profile_command(root: str, path: str, tmp: str, top: int = 20) -> str:
    """``-X importtime`` and cProfile of one command's driver, as text."""
    out = os.path.join(tmp, "profiled")
    timed = time_command(root, path, out, ("-X", "importtime"))
    lines = [f"slowest imports of `nudask preprocess` (first part after {timed['first_part']:.2f} s):"]
    lines += [f"  {s:6.3f} s  {name}" for name, s in slowest_imports(timed["stderr"])]
    stats = os.path.join(tmp, "driver.prof")
    time_command(root, path, os.path.join(tmp, "profiled2"), ("-m", "cProfile", "-o", stats))
    lines.append("driver profile, cumulative seconds (cProfile):")
    st = pstats.Stats(stats).stats  # type: ignore[attr-defined]
    ranked = sorted(st.items(), key=lambda kv: -kv[1][3])
    shown = 0
    for (file, line, func), (_, _, _, cum, _) in ranked:
        if "nudask" not in file and "distributed" not in file and "dask" not in file:
            continue
        where = file.split("site-packages/")[-1].replace(root + os.sep, "")
        lines.append(f"  {cum:6.3f} s  {func} ({where}:{line})")
        shown += 1
        if shown == top:
            break
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", help="an input file (e.g. a full-geometry MicroBooNE file)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each way, median (3)")
    ap.add_argument("--against", metavar="DIR", help="another checkout's root, run alternately")
    ap.add_argument("--profile", action="store_true", help="print imports and the driver's profile")
    args = ap.parse_args(argv)
    roots = {"this": HERE, **({"other": os.path.abspath(args.against)} if args.against else {})}
    with tempfile.TemporaryDirectory(prefix="nudask-first-part-") as tmp:
        got = measure(roots, os.path.abspath(args.input), args.repeats, tmp)
        profile = profile_command(HERE, os.path.abspath(args.input), tmp) if args.profile else ""
    sides = list(roots)
    print("| measure, s | " + " | ".join(sides) + " |")
    print("|---|" + "---:|" * len(sides))
    for key in got["this"]:
        print(f"| {key} | " + " | ".join(f"{got[s][key]:.2f}" for s in sides) + " |")
    if profile:
        print()
        print(profile)


if __name__ == "__main__":
    main()
