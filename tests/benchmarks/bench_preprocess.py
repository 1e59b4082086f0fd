"""Benchmark of nudask's MicroBooNE preprocessing at the real files' density (and the sparse one).

Full-geometry MicroBooNE events (2400/2400/3456 wires x 6400 ticks) are simulated for each
``--density``: ``real`` (the simulator's default, the public WithWire files' weight) and
``sparse`` (``cosmics="sparse"``, the earlier, half as dense files), one file each of
``max(--events, --scaling-events)`` events in a temporary folder (or ``--keep DIR``, reused
when it already holds them). One table, a column per density (real first), gives the
issue's targets with their verdicts, then the measures behind them:

Throughput, one worker (this process, one thread), events/s, the first ``--events`` events:
  floor (a)  h5py reads and inflates each event's rows ``wire_table/adc[a:b]`` (once);
  floor (b)  the compressed chunks under the events, read with ``read_direct_chunk`` and
             only inflated, each once per pass, by libdeflate (``deflate``; repeated), ISA-L
             (``isal``) and ``zlib-ng`` (once each); the fastest binding is floor (b);
  nudask     ``run_chunk`` over the events as one chunk: read, render, sparsify, Parquet;
  notebook   per event a pandas frame with one column per tick, a query per plane, rows
             placed by wire, 6-tick block sum, cut-off, clip, one 8-bit PNG per plane (once).
Storage per event: dense float32 image, nudask Parquet (float32, ``--values float16`` where
  this nudask has it, ``--eight-bit``), the notebook's PNGs; bytes by column (Parquet footer).
Profile: cProfile of a ``run_chunk`` pass each repeat, by stage (ms per event).
Scaling: ``preprocess`` over ``--scaling-events`` events on LocalClusters of 1 and of 2
  single-threaded workers, nudask's ``local_cluster`` and a plain ``LocalCluster``; compute
  time only (clusters started and warmed first, no performance report, no input hashes);
  pure-Python tasks on the same clusters right after: the control of what the cores gave.
Time to first part: ``nudask preprocess`` and ``preprocess()`` in fresh processes on the
  density's file (bench_first_part.py), stages of the call.
Sizing: the inclusive WithWire sample on 1, 10 and 100 SLURM nodes from the per-core rate
  (bench_sizing.py).
``--against DIR``: another checkout's nudask (e.g. the previous commit, ``git worktree add``)
  runs the ``run_chunk`` measures and the time to first part in its own processes, the
  runs alternated with this checkout's; its figures are columns beside this one's.

Where a target is missed, the stage profile (time) and the bytes by column (storage) follow
the table, against the floor of each (``--details`` prints them always).

Run from the repository root (6.5 minutes on 2 shared cores with the defaults; 1.2 GB of memory)::

    .venv/bin/python tests/benchmarks/bench_preprocess.py
    .venv/bin/python tests/benchmarks/bench_preprocess.py --density real --keep /tmp/nudask-bench
    .venv/bin/python tests/benchmarks/bench_preprocess.py --against /tmp/prev --markdown
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import glob
import hashlib
import json
import os
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version

import dask.config
import deflate
import h5py
import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmark modules

import bench_chunk
import bench_first_part
import bench_sizing
from bench_report import (
    BINDINGS,
    Column,
    Measured,
    bytes_section,
    density_line,
    missed,
    profile_section,
    render_table,
    table_rows,
)

import nudask
from nudask.dataset.manifest import MANIFEST
from nudask.pipeline import preprocess
from nudask.readers.wire_geometry import MICROBOONE, PLANE_NAMES
from nudask.simulate import simulate_microboone

WIRES, TICKS, FACTOR = MICROBOONE.wires, MICROBOONE.ticks, 6
BINS = -(-TICKS // FACTOR)
CUTOFF, CEILING = 10.0, 100.0
SEED = 2024
DENSITIES = ("real", "sparse")

Result = tuple[float, dict]  # seconds for all events, extras


# -- inputs -------------------------------------------------------------------
def simulated(folder: str, n_events: int, cosmics: str) -> str:
    """A full-geometry file of ``n_events`` events of one density in ``folder`` (reused if present)."""
    path = os.path.join(folder, f"bnb_WithWire_bench_{cosmics}_{n_events}.h5")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        simulate_microboone(
            path, n_events=n_events, seed=SEED, sample="bnb", geometry="microboone", cosmics=cosmics
        )
        print(f"simulated {n_events} {cosmics} events into {path} in {time.perf_counter() - t0:.1f} s")
    return path


def event_spans(path: str, n_events: int | None = None) -> list[tuple[int, int]]:
    """Wire-table rows ``[a, b)`` of the first ``n_events`` events, from ``event_id.seq_cnt``."""
    with h5py.File(path, "r") as f:
        seq = f["wire_table/event_id.seq_cnt"][()]
    ends = np.cumsum(seq[:, 1])
    spans = [(int(e - n), int(e)) for e, n in zip(ends, seq[:, 1], strict=True)]
    return spans[:n_events]


def events_in(path: str) -> int:
    with h5py.File(path, "r") as f:
        return len(f["event_table/event_id"])


# -- throughput measures ------------------------------------------------------
def floor_h5py(path: str, spans) -> Result:
    """Floor (a): h5py slicing, each event's rows at once."""
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        adc = f["wire_table/adc"]
        nnz = sum(int(np.count_nonzero(adc[a:b])) for a, b in spans)
    return time.perf_counter() - t0, {"nnz": nnz}


def inflaters(nbytes: int) -> dict[str, Callable[[bytes], bytes]]:
    """The installed bindings of :data:`BINDINGS` (ISA-L is no dependency of nudask's)."""
    out: dict[str, Callable[[bytes], bytes]] = {
        "libdeflate": lambda raw: deflate.zlib_decompress(raw, nbytes)
    }
    try:
        from isal import isal_zlib

        out["isal"] = lambda raw: isal_zlib.decompress(raw, bufsize=nbytes)
    except ImportError:
        pass
    from zlib_ng import zlib_ng

    out["zlib-ng"] = lambda raw: zlib_ng.decompress(raw, bufsize=nbytes)
    return out


def installed_bindings() -> list[str]:
    return [b for b in BINDINGS if b in inflaters(1)]


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


# -- storage ------------------------------------------------------------------
def bytes_by_column(part: str) -> dict[str, int]:
    """Compressed bytes of each top-level column of a Parquet file, from its footer."""
    meta = pq.ParquetFile(part).metadata
    out: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            name = chunk.path_in_schema.split(".")[0]
            out[name] = out.get(name, 0) + chunk.total_compressed_size
    return out


def rendered_pixels(part: str) -> int:
    """Non-zero rendered pixels in a part: the values of the views' first channels (``u_value``...)."""
    meta = pq.ParquetFile(part).metadata
    names = {f"{view}_value" for view in PLANE_NAMES}
    return sum(
        meta.row_group(g).column(c).num_values
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
        if meta.row_group(g).column(c).path_in_schema.split(".")[0] in names
    )


# -- profile ------------------------------------------------------------------
def profile_nudask(path: str, n_events: int, out: str) -> Result:
    """One profiled ``run_chunk`` pass; extras: {"stages": {stage: seconds}}.

    Stages are named by the functions that do them; one the reader no longer has drops
    out (0 s) and its time shows under "reader, the rest".
    """
    prof = cProfile.Profile()
    prof.enable()
    bench_chunk.time_chunk(path, n_events, out)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]  # (file, line, name) -> (.., cumtime, ..)

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
    # whole chunks: libdeflate through ctypes (ZlibInflater.into) or the deflate binding, under
    # RowBlocks._inflate; streamed: zlib-ng (StreamInflater.into) a piece at a time
    inflate = cum("into") + cum("zlib_decompress")
    streamed = cum("_open") > 0
    # h5py's Cython calls are invisible to cProfile: reads count in RowBlocks._inflate, or in
    # RowBlocks._open when streamed (less the rest of the previous chunk it first inflates)
    read = max(0.0, cum("_open") - cum("finish")) if streamed else max(0.0, cum("_inflate") - inflate)
    checks = cum("_check_unique_wires", "_wire_numbers")
    write, sha = cum("write_parquet"), cum("file_sha256") + cum("footer_sha256")
    stages = {
        "read compressed chunks (read_direct_chunk)": read,
        "inflate (zlib-ng, streamed)" if streamed else "inflate (libdeflate)": inflate,
        "copy chunks into the row band (RowBlocks._read_band)": max(0.0, cum("_read_band") - cum("_inflate")),
        # the compiled kernel (numba, the reader's default): its calls count in these two methods
        "kernel: non-zero scan and 6-tick sums (EventRender.scan)": cum("scan"),
        "kernel: wire order and COO images (EventRender.images)": cum("images"),
        # the numpy reference path (kernel=numpy, or a layout the kernel does not take)
        "numpy: non-zero extraction (_nonzero_samples)": max(
            0.0, cum("_nonzero_samples") - cum("_read_band")
        ),
        "numpy: render + sparsify (render_wire_samples)": cum("render_wire_samples"),
        "wire checks (_check_unique_wires, _wire_numbers)": checks,
    }
    reader = cum("read", "read_batch")
    stages["reader, the rest (index, metadata, plane split)"] = max(0.0, reader - sum(stages.values()))
    stages["Arrow table build (events_to_table, batch_to_table)"] = cum("events_to_table", "batch_to_table")
    stages["Parquet write (write_parquet)"] = write - sha
    stages["sha256 of the written part (file and footer)"] = sha
    stages["other"] = max(0.0, total - sum(stages.values()))
    return total, {"stages": stages}


# -- scaling ------------------------------------------------------------------
def _warm_imports() -> dict[str, str]:
    """Import the task's modules; return the worker's glibc malloc settings."""
    import nudask.dataset.write
    import nudask.readers.microboone  # noqa: F401

    return {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}


def _busy(seed: int, n: int = 2_000_000) -> int:
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

        return local_cluster(n_workers=n, threads_per_worker=1, dashboard_address="127.0.0.1:0")
    return LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0", host="127.0.0.1"
    )


def scaling(path: str, warm: str, out: str, repeats: int, per_chunk: int) -> dict:
    """Median compute seconds of ``preprocess`` per cluster of :data:`CLUSTERS`, alternated.

    Also times 4 ``_busy`` tasks on the same clusters: the speed-up the machine itself
    gives at that moment (other processes, shared cores), against which to read nudask's.
    The performance report (its HTML is written after the last chunk, seconds of bokeh)
    and the input hashes are off: what is timed is the chunks.
    """
    from distributed import Client

    times: dict[tuple, list[float]] = {c: [] for c in CLUSTERS}
    control: dict[tuple, list[float]] = {c: [] for c in CLUSTERS}
    environ = dict(os.environ)
    run = {"reader": "microboone", "progress": False, "overwrite": True, "checksum": False}
    for _ in range(repeats):
        for kind, n in CLUSTERS:
            # the nanny copies its pre-spawn environment into this process's os.environ and
            # leaves it there, where it overrides the config of every later cluster: reset
            os.environ.clear()
            os.environ.update(environ)
            with (
                dask.config.set({"nudask.preprocess.performance-report": False}),
                make_cluster(kind, n) as cluster,
                Client(cluster) as client,
            ):
                malloc = next(iter(client.run(_warm_imports).values()))
                preprocess(warm, os.path.join(out, "warm"), events_per_chunk=1, client=client, **run)
                target = os.path.join(out, f"{kind}{n}")
                t0 = time.perf_counter()
                preprocess(path, target, events_per_chunk=per_chunk, client=client, **run)
                wall = time.perf_counter() - t0
                with open(os.path.join(target, MANIFEST)) as fh:
                    info = json.load(fh).get("run", {})
                times[kind, n].append(info.get("seconds", wall))
                t0 = time.perf_counter()
                client.gather(client.map(_busy, range(4), pure=False))
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
        "seconds": {c: statistics.median(t) for c, t in times.items()},
        "control": {c: statistics.median(t) for c, t in control.items()},
    }


# -- one density --------------------------------------------------------------
def measure_density(density: str, path: str, warm: str, tmp: str, args) -> Measured:
    """The in-process measures (repeated, interleaved), the once-only ones, scaling, first part."""
    spans = event_spans(path, args.events)
    n = len(spans)
    dirs = {k: os.path.join(tmp, density, k) for k in ("nudask", "png", "prof", "scale", "other", "first")}
    dirs.update({s: os.path.join(tmp, density, s) for s in bench_chunk.storages()})
    for d in dirs.values():
        os.makedirs(d)
    repeated: dict[str, Callable[[], Result]] = {
        "read only": lambda: floor_direct(path, spans, None),
        "libdeflate": lambda: floor_direct(path, spans, "libdeflate"),
        "nudask": lambda: bench_chunk.time_chunk(path, n, dirs["nudask"]),
        "profile": lambda: profile_nudask(path, n, dirs["prof"]),
    }
    once: dict[str, Callable[[], Result]] = {
        "h5py": lambda: floor_h5py(path, spans),
        **{b: (lambda b=b: floor_direct(path, spans, b)) for b in installed_bindings() if b != "libdeflate"},
        "notebook": lambda: notebook(path, spans, dirs["png"]),
    }
    # warm-up: imports, page cache
    floor_h5py(path, spans[:1])
    bench_chunk.time_chunk(warm, 1, dirs["prof"])
    notebook(warm, event_spans(warm, 1), dirs["png"])
    times: dict[str, list[float]] = {k: [] for k in [*repeated, *once]}
    extras: dict[str, list[dict]] = {k: [] for k in times}
    faults: dict[str, list[int]] = {k: [] for k in times}
    other: list[dict] = []

    def timed(name: str, fn: Callable[[], Result]) -> None:
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        seconds, extra = fn()
        faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        times[name].append(seconds)
        extras[name].append(extra)

    for rep in range(args.repeats):
        for name, fn in repeated.items():
            timed(name, fn)
        if args.against:  # the other checkout in its own process, between this one's passes
            other.append(bench_chunk.other_checkout(args.against, path, n, dirs["other"]))
        print(
            f"{density}, repeat {rep + 1}/{args.repeats}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v)
            + (f", other checkout's nudask {other[-1]['seconds'][0]:.2f} s" if other else ""),
            flush=True,
        )
    for name, fn in once.items():
        timed(name, fn)
    print(f"{density}, once: " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in once), flush=True)
    parts = {"float32": extras["nudask"][-1]["file"]}
    for storage in bench_chunk.storages():
        if storage != "float32":
            parts[storage] = bench_chunk.time_chunk(path, n, dirs[storage], storage)[1]["file"]
    extras["h5py"][-1]["samples"] = (spans[-1][1] - spans[0][0]) * TICKS
    stages = {
        s: statistics.median(e["stages"][s] for e in extras["profile"])
        for s in extras["profile"][0]["stages"]
    }
    result = Measured(
        density=density,
        n=n,
        file_bytes_per_event=os.path.getsize(path) / events_in(path),
        seconds={k: statistics.median(v) for k, v in times.items()},
        extra={k: v[-1] for k, v in extras.items()},
        faults={k: statistics.median(v) for k, v in faults.items()},
        stages=stages,
        part_bytes={s: os.path.getsize(p) for s, p in parts.items()},
        columns={s: bytes_by_column(p) for s, p in parts.items()},
        pixels=rendered_pixels(parts["float32"]),
    )
    if other:
        result.other = {
            "seconds": statistics.median(o["seconds"][0] for o in other),
            "bytes": other[-1]["bytes"],
            "version": other[-1]["version"],
        }
    if not args.skip_scaling:
        result.scale = scaling(path, warm, dirs["scale"], args.scaling_repeats, args.events_per_chunk)
        result.scaling_events = events_in(path)
    if not args.skip_first_part:
        roots = {
            "this": bench_first_part.HERE,
            **({"other": os.path.abspath(args.against)} if args.against else {}),
        }
        result.first_part = bench_first_part.measure(roots, path, args.first_part_repeats, dirs["first"])
    return result


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
        "zlib-ng",
        "pandas",
        "pillow",
        "dask",
        "distributed",
    )
    pkgs += ("isal",) if "isal" in installed_bindings() else ()
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
    commit = bench_chunk.git_commit(root)
    return f"nudask {nudask.__version__}, git {commit}, sources sha256 {digest.hexdigest()[:12]}"


# -- main ---------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--density",
        choices=("real", "sparse", "both"),
        default="both",
        help="simulated density: real (the public files'), sparse (earlier files), both (default)",
    )
    ap.add_argument("--events", type=int, default=8, help="events of the in-process measures (8)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the in-process measures, median (3)")
    ap.add_argument("--keep", metavar="DIR", help="simulate into DIR; reuse files found there")
    ap.add_argument("--skip-scaling", action="store_true", help="skip the LocalCluster runs")
    ap.add_argument("--scaling-events", type=int, default=16, help="events of the scaling runs (16)")
    ap.add_argument("--scaling-repeats", type=int, default=2, help="repeats of each scaling run (2)")
    ap.add_argument("--events-per-chunk", type=int, default=2, help="scaling runs' chunks (2)")
    ap.add_argument("--skip-first-part", action="store_true", help="skip the time to first part")
    ap.add_argument(
        "--first-part-repeats", type=int, default=1, help="runs of each way to the first part (1)"
    )
    ap.add_argument("--against", metavar="DIR", help="another checkout's root: its nudask side by side")
    ap.add_argument("--details", action="store_true", help="print the profile and bytes by column always")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--cores-per-node", type=int, default=32, help="the sizing's SLURM nodes (32)")
    ap.add_argument(
        "--read-gbs-per-node", type=float, default=1.0, help="the sizing's read rate per node (1)"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load = os.getloadavg()
    about = machine()
    densities = DENSITIES if args.density == "both" else (args.density,)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nudask-bench-") as tmp:
        data = args.keep or tmp
        os.makedirs(data, exist_ok=True)
        warm = simulated(data, 2, "sparse")
        results = []
        for density in densities:
            path = simulated(data, max(args.events, args.scaling_events), density)
            results.append(measure_density(density, path, warm, tmp, args))
        columns: list[Column] = []
        for m in results:
            columns.append((m.density, m, False))
            if m.other:
                columns.append((f"{m.density}, other checkout", m, True))
        rows = table_rows(columns)
        details = [
            profile_section(results)
            if args.details or missed(rows, "nudask / inflate-only floor (b)", "nudask / floor (a)")
            else "",
            bytes_section(results)
            if args.details or missed(rows, *(r.measure for r in rows if "Parquet" in r.measure and r.target))
            else "",
        ]

    bullet = "- " if args.markdown else ""
    print()
    for k, v in about.items():
        print(f"{bullet}{k}: {v}")
    for m in results:
        if m.other:
            print(f"{bullet}other checkout ({m.density} column): {m.other['version']}")
    print(f"{bullet}load average (1 min) at start / end: {load[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(
        f"{bullet}run: --density {args.density} --events {args.events} --repeats {args.repeats}"
        + (" --skip-scaling" if args.skip_scaling else f" --scaling-events {args.scaling_events}")
        + f"; medians of interleaved repeats; {time.perf_counter() - t_start:.0f} s in all"
    )
    for m in results:
        print(f"{bullet}density, {density_line(m)}")
    if "float16" not in bench_chunk.storages():
        print(f"{bullet}--values float16: n/a (not built: this nudask's preprocess has no values= option)")
    print()
    print(render_table([c[0] for c in columns], rows, args.markdown))
    for text in details:
        if text:
            print()
            print(text)
    real = next((m for m in results if m.density == "real"), results[0])
    if real.scale:
        rate, source = scale_rate(real), f"preprocess on nudask's cluster, 1 worker, {real.density} density"
    else:
        rate, source = (
            real.rate("nudask"),
            f"run_chunk in one process, {real.density} density (no scaling run)",
        )
    print()
    print(
        bench_sizing.sizing_table(
            rate, source, cores_per_node=args.cores_per_node, read_gbs_per_node=args.read_gbs_per_node
        )
    )


def scale_rate(m: Measured) -> float:
    return m.scaling_events / m.scale["seconds"]["nudask", 1]  # type: ignore[index]


if __name__ == "__main__":
    main()
