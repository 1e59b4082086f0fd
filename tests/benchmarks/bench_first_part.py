"""Time to first part: how long a user waits for the first Parquet file of a run.

Two ways in, each in a fresh process (interpreter start and imports counted), the output
folder polled every few milliseconds for the first ``part-*.parquet``:

  command   ``python -m nudask preprocess INPUT --out OUT`` (what users type, on the local
            cluster it starts: one worker per core); seconds from the command's start, and
            to its end (the performance report and the summary included);
  call      ``nudask.preprocess(INPUT, OUT)`` in a script, split into stages by wall-clock
            marks: imports, inputs and plan, local cluster start, submission (with the
            worker's imports for its first task), the first task's own compute (its
            ``chunk_seconds`` in the run log: use an input of one task, <= 20 events).

``--profile`` also prints the command driver's slowest imports (``-X importtime``) and its
cumulative profile (cProfile). ``--against DIR`` times another checkout's nudask the same
way, runs alternated (e.g. ``git worktree add /tmp/prev HEAD~1``, or ``git archive``).

    .venv/bin/python tests/benchmarks/bench_first_part.py INPUT.h5 [--repeats 3] [--profile]
    .venv/bin/python tests/benchmarks/bench_first_part.py INPUT.h5 --against /tmp/prev
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

# run in the child: the call, its local cluster's start and end timed (wall clock, JSON on stdout)
CALL = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import nudask.cluster, nudask.pipeline
marks = {"called": time.time()}
start = nudask.cluster.local_cluster

def timed_cluster(**kw):
    marks["cluster_start"] = time.time()
    cluster = start(**kw)
    marks["cluster_up"] = time.time()
    return cluster

nudask.cluster.local_cluster = timed_cluster
nudask.pipeline.preprocess(sys.argv[2], sys.argv[3], overwrite=True, progress=False)
print(json.dumps(marks))
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
    """One ``preprocess()`` call in a fresh script: seconds to the first part, by stage."""
    with tempfile.TemporaryFile() as log:
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-c", CALL, root, path, out], env=child_env(root),
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        seen = first_part(out, proc)
        proc.wait()
        log.seek(0)
        text = log.read().decode(errors="replace")
    if proc.returncode or seen is None:
        raise RuntimeError(f"preprocess() in {root} failed ({proc.returncode}): {text[-2000:]}")
    marks = json.loads(text.strip().splitlines()[-1])
    return {"start": t0, "first_part": seen, "task": run_log_first_task(out), **marks}


def stages(call: dict) -> dict[str, float]:
    """Seconds of each stage up to the first part, from :func:`time_call`'s wall-clock marks.

    >>> marks = {"start": 0.0, "called": 1.5, "cluster_start": 1.75, "cluster_up": 5.0,
    ...          "first_part": 8.0, "task": 2.0}
    >>> stages(marks)  # doctest: +NORMALIZE_WHITESPACE
    {'interpreter and imports (process start -> call)': 1.5,
     'inputs, reader guess, plan (call -> cluster start)': 0.25,
     'local cluster start (scheduler, workers spawned)': 3.25,
     "submit, worker's first-task imports, scheduling": 1.0,
     "first task's own compute (read, render, write)": 2.0,
     'time to first part, from process start': 8.0,
     'time to first part, from the call': 6.5}
    """
    task = call["task"] if call["task"] is not None else float("nan")
    return {
        "interpreter and imports (process start -> call)": call["called"] - call["start"],
        "inputs, reader guess, plan (call -> cluster start)": call["cluster_start"] - call["called"],
        "local cluster start (scheduler, workers spawned)": call["cluster_up"] - call["cluster_start"],
        "submit, worker's first-task imports, scheduling": call["first_part"] - call["cluster_up"] - task,
        "first task's own compute (read, render, write)": task,
        "time to first part, from process start": call["first_part"] - call["start"],
        "time to first part, from the call": call["first_part"] - call["called"],
    }


def measure(roots: dict[str, str], path: str, repeats: int, tmp: str) -> dict[str, dict[str, float]]:
    """Medians per checkout of :func:`time_command` and :func:`time_call`'s stages, alternated."""
    runs: dict[str, dict[str, list[float]]] = {side: {} for side in roots}
    for rep in range(repeats):
        for side, root in roots.items():
            out = os.path.join(tmp, f"{side}-{rep}")
            cmd = time_command(root, path, out + "-command")
            call = stages(time_call(root, path, out + "-call"))
            got = {
                "`nudask preprocess`: first part, from the command's start": cmd["first_part"],
                "`nudask preprocess`: the command's end": cmd["end"],
                **{f"preprocess(): {k}": v for k, v in call.items()},
            }
            for k, v in got.items():
                runs[side].setdefault(k, []).append(v)
            print(
                f"  first part, {side} checkout, repeat {rep + 1}/{repeats}: command "
                f"{cmd['first_part']:.2f} s, preprocess() {call['time to first part, from the call']:.2f} s "
                "after the call",
                flush=True,
            )
    return {side: {k: statistics.median(v) for k, v in got.items()} for side, got in runs.items()}


# -- profile ------------------------------------------------------------------
# the command in a script whose -X importtime its spawned workers do not inherit (multiprocessing
# copies sys._xoptions), so that the import times are the driver's alone
IMPORTTIME = r"""
import sys
sys._xoptions.pop("importtime", None)
sys.path.insert(0, sys.argv.pop(1))
from nudask.cli import main
sys.exit(main(sys.argv[1:]))
"""


def slowest_imports(stderr: bytes, top: int = 12, depth: int = 2) -> list[tuple[str, float]]:
    r"""Modules (nested at most ``depth`` deep) by cumulative import seconds, from ``-X importtime``.

    >>> text = b"import time: self [us] | cumulative | imported package\n"
    >>> text += b"import time:       100 |        900 |     numpy\n"
    >>> text += b"import time:       200 |       1500 |   nudask.readers\n"
    >>> text += b"import time:         5 |       2000 | nudask.cli\n"
    >>> slowest_imports(text, depth=1)
    [('nudask.cli', 0.002), ('  nudask.readers', 0.0015)]
    """
    rows = []
    for line in stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|", 2)
        name = name[1:].rstrip()
        if (len(name) - len(name.lstrip())) // 2 <= depth:
            rows.append((name, int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:top]


def profile_command(root: str, path: str, tmp: str, top: int = 20) -> str:
    """The driver's imports (``-X importtime``) and cProfile of one command, as text."""
    argv = [sys.executable, "-X", "importtime", "-c", IMPORTTIME, root, "preprocess", path, "--overwrite"]
    out = os.path.join(tmp, "imports")
    with tempfile.TemporaryFile() as err:
        subprocess.run([*argv, "--out", out], env=child_env(root), stdout=subprocess.DEVNULL, stderr=err,
                       check=True)  # fmt: skip
        err.seek(0)
        imports = slowest_imports(err.read())
    lines = ["slowest imports of the `nudask preprocess` driver (-X importtime, cumulative):"]
    lines += [f"  {s:6.3f} s  {name}" for name, s in imports]
    stats = os.path.join(tmp, "driver.prof")
    timed = time_command(root, path, os.path.join(tmp, "profiled"), ("-m", "cProfile", "-o", stats))
    lines.append(
        f"driver profile (cProfile; first part after {timed['first_part']:.2f} s, "
        f"end {timed['end']:.2f} s), cumulative seconds:"
    )
    ranked = sorted(pstats.Stats(stats).stats.items(), key=lambda kv: -kv[1][3])  # type: ignore[attr-defined]
    shown = [
        f"  {cum:6.3f} s  {func} ({file.split('site-packages/')[-1].replace(root + os.sep, '')}:{line})"
        for (file, line, func), (_, _, _, cum, _) in ranked
        if "nudask" in file or "distributed" in file
    ]
    return "\n".join(lines + shown[:top])


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
    print(render(got))
    if profile:
        print()
        print(profile)


def render(got: dict[str, dict[str, float]]) -> str:
    """The medians as a Markdown table, a column per checkout (and this / other)."""
    sides = list(got)
    head = ["seconds (median)", *(f"{s} checkout" for s in sides)] + (
        ["this / other"] if len(sides) > 1 else []
    )
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for key in got["this"]:
        cells = [f"{got[s][key]:.2f}" for s in sides]
        if len(sides) > 1:
            cells.append(f"{got['this'][key] / got['other'][key]:.2f}" if got["other"][key] else "")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
