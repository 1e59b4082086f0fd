"""Benchmark of nudask's MicroBooNE preprocessing against its floors and the notebook way.

Full-geometry MicroBooNE events (2400/2400/3456 wires x 6400 ticks) are simulated
into a temporary folder (or ``--keep DIR``, reused when it already holds them). In ONE
run, the repetitions of all in-process measures are interleaved and the median of
``--repeats`` is reported:

Throughput, one worker (this process, one thread), events/s:
  floor (a)  h5py reads and inflates each event's rows ``wire_table/adc[a:b]`` (seq_cnt);
  floor (b)  the compressed chunks under the events, read with ``read_direct_chunk`` and
             only inflated, each once per pass, by libdeflate (``deflate``), ISA-L
             (``isal``) and ``zlib-ng``; the fastest binding is floor (b);
  nudask     ``run_chunk`` over all events as one chunk: read, render, sparsify, Parquet;
  notebook   per event a pandas frame with one column per tick, a query per plane,
             rows placed by wire, 6-tick block sum, cut-off, clip, one 8-bit PNG per plane.
Storage per event: dense float32 image, nudask Parquet (float32 and ``eight_bit``), PNG.
Profile: cProfile of a ``run_chunk`` pass each repeat, split into stages (ms per event).
Scaling: ``preprocess`` over ``--scaling-events`` events on LocalClusters of 1 and of 2
single-threaded workers, both nudask's ``local_cluster`` (what ``preprocess`` starts) and
a plain ``LocalCluster`` with Dask's defaults; runs alternated, compute time only (cluster
started and warmed with a tiny run first); pure-Python tasks on the same clusters are the
control for the speed-up the machine itself gives at that moment.

Run from the repository root (5-7 minutes on 2 cores; about 2 GB of memory)::

    .venv/bin/python tests/benchmarks/bench_preprocess.py
    .venv/bin/python tests/benchmarks/bench_preprocess.py --events 24 --keep /tmp/nudask-bench
    .venv/bin/python tests/benchmarks/bench_preprocess.py --skip-scaling --markdown
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import glob
import hashlib
import inspect
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version

import deflate
import h5py
import numpy as np

import nudask
from nudask import config
from nudask.dataset.manifest import MANIFEST
from nudask.events import Chunk
from nudask.pipeline import plan, preprocess, run_chunk
from nudask.readers import get_reader
from nudask.readers.wire_geometry import MICROBOONE
from nudask.simulate import simulate_microboone

WIRES, TICKS, FACTOR = MICROBOONE.wires, MICROBOONE.ticks, 6
BINS = -(-TICKS // FACTOR)
CUTOFF, CEILING = 10.0, 100.0
SEED = 2024
BINDINGS = ("libdeflate", "isal", "zlib-ng")

Result = tuple[float, dict]  # seconds for all events, extras


# -- inputs -------------------------------------------------------------------
def simulated(folder: str, n_events: int) -> str:
    """A full-geometry file of ``n_events`` events in ``folder`` (reused if present)."""
    path = os.path.join(folder, f"bnb_WithWire_bench_{n_events}.h5")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        simulate_microboone(path, n_events=n_events, seed=SEED, sample="bnb", geometry="microboone")
        print(f"simulated {n_events} events into {path} in {time.perf_counter() - t0:.1f} s")
    return path


def event_spans(path: str) -> list[tuple[int, int]]:
    """Wire-table rows ``[a, b)`` of each event, from ``event_id.seq_cnt``."""
    with h5py.File(path, "r") as f:
        seq = f["wire_table/event_id.seq_cnt"][()]
    ends = np.cumsum(seq[:, 1])
    return [(int(e - n), int(e)) for e, n in zip(ends, seq[:, 1], strict=True)]


# -- throughput measures ------------------------------------------------------
def floor_h5py(path: str, spans) -> Result:
    """Floor (a): h5py slicing, each event's rows at once."""
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        adc = f["wire_table/adc"]
        nnz = sum(int(np.count_nonzero(adc[a:b])) for a, b in spans)
    return time.perf_counter() - t0, {"nnz": nnz}


def inflaters(nbytes: int) -> dict[str, Callable[[bytes], bytes]]:
    from isal import isal_zlib
    from zlib_ng import zlib_ng

    return {
        "libdeflate": lambda raw: deflate.zlib_decompress(raw, nbytes),
        "isal": lambda raw: isal_zlib.decompress(raw, bufsize=nbytes),
        "zlib-ng": lambda raw: zlib_ng.decompress(raw, bufsize=nbytes),
    }


def floor_direct(path: str, spans, binding: str | None) -> Result:
    """Floor (b): every chunk under the events read once and inflated (None: read only)."""
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        dset = f["wire_table/adc"]
        rows, cols = dset.chunks
        inflate = inflaters(rows * cols * dset.dtype.itemsize).get(binding)
        out = 0
        for r0 in range(spans[0][0] // rows * rows, spans[-1][1], rows):
            for c0 in range(0, dset.shape[1], cols):
                _, raw = dset.id.read_direct_chunk((r0, c0))
                out += len(inflate(raw)) if inflate else len(raw)
    return time.perf_counter() - t0, {"bytes": out}


def nudask_chunk(path: str, n_events: int, out: str, *, eight_bit: bool = False) -> Result:
    """nudask's task body: ``run_chunk`` on events ``[0, n_events)`` (setup not timed)."""
    reader = get_reader("microboone")
    schema = plan([path], reader, events_per_chunk=n_events, on_error="raise", eight_bit=eight_bit).schema
    storage = {
        k: config.get(f"storage.{k.replace('_', '-')}")
        for k in ("row_group_events", "compression", "compression_level")
    }
    chunk = Chunk(path, reader.name, 0, n_events)
    kw = {"on_error": "raise"} if "on_error" in inspect.signature(run_chunk).parameters else {}
    t0 = time.perf_counter()
    task = (chunk,) if "ChunkResult" in inspect.signature(run_chunk).return_annotation else chunk
    result = run_chunk(task, reader=reader, out=out, schema=schema, storage=storage, **kw)
    size = result.part.bytes if hasattr(result, "part") else result["file"]["bytes"]
    return time.perf_counter() - t0, {"bytes": size}


def notebook(path: str, spans, out: str) -> Result:
    """The OpenSamples notebook way, one event at a time, one PNG per plane."""
    import pandas as pd
    from PIL import Image

    columns = [f"t{i}" for i in range(TICKS)]
    png_bytes = 0
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        wt = f["wire_table"]
        for k, (a, b) in enumerate(spans):
            df = pd.DataFrame(wt["adc"][a:b], columns=columns)
            df["local_plane"] = wt["local_plane"][a:b, 0]
            df["local_wire"] = wt["local_wire"][a:b, 0]
            for p, nwires in enumerate(WIRES):
                sel = df.query(f"local_plane == {p}")
                dense = np.zeros((nwires, TICKS), np.float32)
                dense[sel["local_wire"].to_numpy().astype(int)] = sel[columns].to_numpy()
                image = block_sum(dense, FACTOR)
                image[image < CUTOFF] = 0
                np.minimum(image, CEILING, out=image)
                grey = (image * (255 / CEILING)).astype(np.uint8)
                name = os.path.join(out, f"event{k:05d}_plane{p}.png")
                Image.fromarray(grey.T).save(name)  # as displayed: time up, wire across
                png_bytes += os.path.getsize(name)
                os.remove(name)  # 120,000 files blew the quota; we only need the bytes
    return time.perf_counter() - t0, {"bytes": png_bytes}


def block_sum(a: np.ndarray, f: int) -> np.ndarray:
    """skimage ``block_reduce(a, (1, f), np.sum)``: the last, partial block padded with zeros."""
    pad = -a.shape[1] % f
    if pad:
        a = np.pad(a, ((0, 0), (0, pad)))
    return a.reshape(a.shape[0], -1, f).sum(-1)


# -- profile ------------------------------------------------------------------
def profile_nudask(path: str, n_events: int, out: str) -> Result:
    """One profiled ``run_chunk`` pass; extras: {"stages": {stage: seconds}}."""
    prof = cProfile.Profile()
    prof.enable()
    nudask_chunk(path, n_events, out)
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)

    def cum(*names: str) -> float:
        """Cumulative seconds of nudask functions (exact name) or built-ins (name contained)."""
        return sum(
            v[3]
            for (file, _, func), v in stats.items()
            for n in names
            if (func == n and f"{os.sep}nudask{os.sep}" in file)
            or (file == "~" and f"{n}'" in func.replace(">", "'"))
        )

    total = cum("run_chunk")
    inflate = cum("zlib_decompress")
    checks = cum("_check_unique_wires", "_wire_numbers")
    render = cum("render_wire_samples")
    write, sha = cum("write_parquet"), cum("file_sha256")
    stages = {
        # h5py's Cython calls are invisible to cProfile: they count in RowBlocks._inflate
        "read compressed chunks (read_direct_chunk, RowBlocks._inflate)": cum("_inflate") - inflate,
        "inflate (deflate.zlib_decompress)": inflate,
        "copy chunks into the row band (RowBlocks._read_band)": cum("_read_band") - cum("_inflate"),
        "non-zero extraction (_nonzero_samples)": cum("_nonzero_samples") - cum("_read_band"),
        "wire checks (_check_unique_wires, _wire_numbers)": checks,
        "render + sparsify (render_wire_samples)": render,
        "reader rest (index, metadata, plane split)": cum("read") - cum("_nonzero_samples") - checks - render,
        "Arrow table build (events_to_table)": cum("events_to_table"),
        "Parquet write (write_parquet, zstd 9)": write - sha,
        "sha256 of the written part (file_sha256)": sha,
    }
    stages["other"] = total - sum(stages.values())
    return total, {"stages": stages}


# -- scaling ------------------------------------------------------------------
def _warm_imports() -> dict[str, str]:
    """Import the task's modules; return the worker's glibc malloc settings."""
    import nudask.dataset.write
    import nudask.readers.microboone  # noqa: F401

    return {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}


def _busy(seed: int, n: int = 3_000_000) -> int:
    """Pure-Python CPU work (no memory traffic): the control for what the cores give."""
    x = seed
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


CLUSTERS = (("nudask", 1), ("nudask", 2), ("dask", 1), ("dask", 2))


def make_cluster(kind: str, n: int):
    """``nudask``: :func:`nudask.cluster.local_cluster` (what ``preprocess`` starts itself,
    worker malloc tuned); ``dask``: a plain ``LocalCluster`` with Dask's defaults."""
    from distributed import LocalCluster

    if kind == "nudask":
        from nudask.cluster import local_cluster

        return local_cluster(n_workers=n, threads_per_worker=1, dashboard_address=":0")
    return LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
    )


def scaling(path: str, warm: str, out: str, repeats: int, per_chunk: int) -> dict:
    """Median compute seconds of ``preprocess`` per cluster of :data:`CLUSTERS`, alternated.

    Also times 8 ``_busy`` tasks on the same clusters: the speed-up the machine itself
    gives at that moment (other processes, shared cores), against which to read nudask's.
    """
    from distributed import Client

    times: dict[tuple, list[float]] = {c: [] for c in CLUSTERS}
    control: dict[tuple, list[float]] = {c: [] for c in CLUSTERS}
    environ = dict(os.environ)
    for _ in range(repeats):
        for kind, n in CLUSTERS:
            # the nanny copies its pre-spawn environment into this process's os.environ and
            # leaves it there, where it overrides the config of every later cluster: reset
            os.environ.clear()
            os.environ.update(environ)
            with make_cluster(kind, n) as cluster, Client(cluster) as client:
                malloc = next(iter(client.run(_warm_imports).values()))
                run = {
                    "reader": "microboone",
                    "client": client,
                    "progress": False,
                    "overwrite": True,
                    "checksum": False,
                }
                preprocess(warm, os.path.join(out, "warm"), events_per_chunk=1, **run)
                target = os.path.join(out, f"{kind}{n}")
                t0 = time.perf_counter()
                preprocess(path, target, events_per_chunk=per_chunk, **run)
                wall = time.perf_counter() - t0
                with open(os.path.join(target, MANIFEST)) as fh:
                    info = json.load(fh).get("run", {})
                times[kind, n].append(info.get("seconds", wall))
                t0 = time.perf_counter()
                client.gather(client.map(_busy, range(8), pure=False))
                control[kind, n].append(time.perf_counter() - t0)
                print(
                    f"  scaling, {kind} cluster, {n} worker(s): compute "
                    f"{times[kind, n][-1]:.2f} s (call {wall:.2f} s), {info.get('chunks')} "
                    f"chunks on {len(info.get('workers', []))} worker(s); "
                    f"control {control[kind, n][-1]:.2f} s; workers' {malloc}",
                    flush=True,
                )
    os.environ.clear()
    os.environ.update(environ)
    return {
        "nudask": {c: statistics.median(t) for c, t in times.items()},
        "control": {c: statistics.median(t) for c, t in control.items()},
    }


# -- report -------------------------------------------------------------------
def machine() -> dict[str, str]:
    model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pkgs = (
        "numpy",
        "h5py",
        "pyarrow",
        "deflate",
        "isal",
        "zlib-ng",
        "pandas",
        "pillow",
        "dask",
        "distributed",
    )
    return {
        "code": code_version(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"nproc {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), {model}, "
        f"{mem:.0f} GiB RAM, {platform.system()} {platform.release()}",
        "versions": f"python {platform.python_version()}, "
        + ", ".join(f"{p} {version(p)}" for p in pkgs)
        + f", HDF5 {h5py.version.hdf5_version}",
    }


def code_version() -> str:
    """Git commit of nudask plus a digest of its sources (they may be uncommitted)."""
    root = os.path.dirname(os.path.abspath(nudask.__file__))
    digest = hashlib.sha256()
    for name in sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)):
        with open(name, "rb") as fh:
            digest.update(fh.read())
    try:
        commit = subprocess.run(
            ["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    return f"nudask {nudask.__version__}, git {commit}, sources sha256 {digest.hexdigest()[:12]}"


def row(measure: str, value: float, unit: str, target: str = "", fmt: str = ".2f") -> list[str]:
    verdict = ""
    if target:
        op, bound = target.split()
        ok = value >= float(bound) if op == ">=" else value <= float(bound)
        verdict = "pass" if ok else "FAIL"
    return [measure, format(value, fmt), unit, target, verdict]


def render_table(rows: list[list[str]], markdown: bool) -> str:
    head = ["measure", "value", "unit", "target", "pass/fail"]
    if markdown:
        rule = "|---|---:|---|---|---|"
        return "\n".join(
            ["| " + " | ".join(r) + " |" for r in [head]]
            + [rule]
            + ["| " + " | ".join(r) + " |" for r in rows]
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'>' if i == 1 else '<'}{w}}}" for i, w in enumerate(widths))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*head), sep] + [fmt.format(*r) for r in rows])


def report(
    n: int, med: dict, extra: dict, faults: dict, eight: dict, stages: dict, scale: dict | None, args
) -> list[list[str]]:
    rate = {k: n / v for k, v in med.items()}
    best = max(BINDINGS, key=lambda b: rate[b])
    dense_in = extra["h5py"]["dense_bytes"]
    dense = sum(WIRES) * BINS * 4
    parquet, parquet8 = extra["nudask"]["bytes"] / n, eight["bytes"] / n
    png = extra["notebook"]["bytes"] / n
    rows = [
        row("events (full geometry, simulated, one file)", n, "events", fmt="d"),
        row(
            "non-zero samples in wire_table/adc", 100 * extra["h5py"]["nnz"] / (dense_in / 4), "%", fmt=".3f"
        ),
        row("compressed wire_table/adc", extra["read only"]["bytes"] / n / 1e6, "MB/event"),
        row(
            "floor (a): h5py adc[a:b] per event",
            rate["h5py"],
            f"events/s ({dense_in / med['h5py'] / 1e9:.2f} GB/s out)",
        ),
        row("read_direct_chunk only, no inflate", rate["read only"], "events/s"),
    ]
    for b in BINDINGS:
        gbs = extra[b]["bytes"] / med[b] / 1e9
        rows.append(row(f"read_direct_chunk + {b}", rate[b], f"events/s ({gbs:.2f} GB/s out)"))
    rows += [
        row(f"floor (b): fastest binding = {best}", rate[best], "events/s"),
        row("nudask run_chunk (read+render+sparsify+write)", rate["nudask"], "events/s"),
        row("notebook (pandas + block sum + PNG)", rate["notebook"], "events/s"),
        row("nudask / floor (a)", rate["nudask"] / rate["h5py"], "x", ">= 1.3"),
        row("nudask / floor (b)", rate["nudask"] / rate[best], "x", ">= 0.6"),
        row("nudask / notebook", rate["nudask"] / rate["notebook"], "x", ">= 4"),
        row(f"minor page faults: floor (b) {best}", faults[best] / n, "per event", fmt=".0f"),
        row("minor page faults: nudask", faults["nudask"] / n, "per event", fmt=".0f"),
        row("minor page faults: nudask under cProfile", faults["profile"] / n, "per event", fmt=".0f"),
        row("dense float32 image (3 planes x 1067 bins)", dense / 1e6, "MB/event"),
        row("nudask Parquet, float32 (zstd 9)", parquet / 1e3, "kB/event", fmt=".1f"),
        row("nudask Parquet, eight_bit", parquet8 / 1e3, "kB/event", fmt=".1f"),
        row("notebook 8-bit PNG (3 planes)", png / 1e3, "kB/event", fmt=".1f"),
        row("dense / Parquet", dense / parquet, "x", ">= 150", fmt=".0f"),
        row("Parquet / PNG", parquet / png, "x", "<= 2"),
        row("8-bit Parquet / PNG", parquet8 / png, "x", "<= 0.8"),
    ]
    if scale:
        t, c = scale["nudask"], scale["control"]
        per = f"{args.scaling_events} events, {args.events_per_chunk} per chunk"
        ns = args.scaling_events
        for kind, name, target in (
            ("nudask", "nudask local_cluster", ">= 1.7"),
            ("dask", "plain LocalCluster (Dask defaults)", ""),
        ):
            rows += [
                row(f"preprocess, {name}, 1 worker ({per})", ns / t[kind, 1], "events/s"),
                row(f"preprocess, {name}, 2 workers", ns / t[kind, 2], "events/s"),
                row(f"  2 workers / 1 worker, {name}", t[kind, 1] / t[kind, 2], "x", target),
            ]
        rows.append(
            row("  control: pure-Python tasks, 2 workers / 1 worker", c["nudask", 1] / c["nudask", 2], "x")
        )
    profiled = med["profile"]
    rows += [
        row("profile: nudask unprofiled (median)", 1e3 * med["nudask"] / n, "ms/event", fmt=".1f"),
        row("profile: nudask under cProfile (median)", 1e3 * profiled / n, "ms/event", fmt=".1f"),
    ]
    for stage, seconds in stages.items():
        rows.append(
            row(
                f"profile: {stage}",
                1e3 * seconds / n,
                f"ms/event ({100 * seconds / profiled:.0f} %)",
                fmt=".1f",
            )
        )
    return rows


# -- main ---------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=12, help="events to simulate (default 12)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per measure, median (3)")
    ap.add_argument("--keep", metavar="DIR", help="simulate into DIR; reuse files found there")
    ap.add_argument("--skip-scaling", action="store_true", help="skip the LocalCluster runs")
    ap.add_argument("--scaling-events", type=int, default=24, help="events in scaling runs (24)")
    ap.add_argument("--events-per-chunk", type=int, default=2, help="scaling runs' chunks (2)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    load = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="nudask-bench-") as tmp:
        data = args.keep or tmp
        os.makedirs(data, exist_ok=True)
        path, warm = simulated(data, args.events), simulated(data, 2)
        spans = event_spans(path)
        n = len(spans)
        dirs = {k: os.path.join(tmp, k) for k in ("nudask", "nudask8", "png", "prof", "scale")}
        for d in dirs.values():
            os.makedirs(d)
        measures: dict[str, Callable[[], Result]] = {
            "h5py": lambda: floor_h5py(path, spans),
            "read only": lambda: floor_direct(path, spans, None),
            **{b: (lambda b=b: floor_direct(path, spans, b)) for b in BINDINGS},
            "nudask": lambda: nudask_chunk(path, n, dirs["nudask"]),
            "notebook": lambda: notebook(path, spans, dirs["png"]),
            "profile": lambda: profile_nudask(path, n, dirs["prof"]),
        }
        # warm-up: imports, page cache
        floor_h5py(path, spans[:1])
        nudask_chunk(warm, 1, dirs["prof"])
        notebook(warm, event_spans(warm)[:1], dirs["png"])
        times: dict[str, list[float]] = {k: [] for k in measures}
        extras: dict[str, list[dict]] = {k: [] for k in measures}
        faults: dict[str, list[int]] = {k: [] for k in measures}
        for rep in range(args.repeats):
            for name, fn in measures.items():
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                seconds, extra = fn()
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
                times[name].append(seconds)
                extras[name].append(extra)
            print(
                f"repeat {rep + 1}/{args.repeats}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                flush=True,
            )
        _, eight = nudask_chunk(path, n, dirs["nudask8"], eight_bit=True)
        scale = (
            None
            if args.skip_scaling
            else scaling(
                simulated(data, args.scaling_events), warm, dirs["scale"], args.repeats, args.events_per_chunk
            )
        )

    med = {k: statistics.median(v) for k, v in times.items()}
    extra = {k: v[-1] for k, v in extras.items()}
    extra["h5py"]["dense_bytes"] = (spans[-1][1] - spans[0][0]) * TICKS * 4
    stages = {
        s: statistics.median(e["stages"][s] for e in extras["profile"])
        for s in extras["profile"][0]["stages"]
    }
    med_faults = {k: statistics.median(v) for k, v in faults.items()}
    rows = report(n, med, extra, med_faults, eight, stages, scale, args)

    bullet = "- " if args.markdown else ""
    print()
    for k, v in machine().items():
        print(f"{bullet}{k}: {v}")
    print(f"{bullet}load average (1 min) at start / end: {load[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(
        f"{bullet}run: --events {args.events} --repeats {args.repeats}"
        + (" --skip-scaling" if args.skip_scaling else f" --scaling-events {args.scaling_events}")
        + "; medians of interleaved repeats"
    )
    print()
    print(render_table(rows, args.markdown))


if __name__ == "__main__":
    main()
