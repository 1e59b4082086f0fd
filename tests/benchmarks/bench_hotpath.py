"""Benchmark of the MicroBooNE hot path: kernel against reference against the inflate floor.

Full-geometry events are simulated into a temporary folder (or ``--keep DIR``, reused
when it already holds them). Every measure runs in a child process (one core, one
thread) under three malloc settings: glibc's defaults (a plain process); Dask's worker
default (``distributed.nanny.pre-spawn-environ``, ``MALLOC_TRIM_THRESHOLD_=65536``),
which is what the workers of a plain ``LocalCluster()`` get; and
:data:`nudask.cluster.WORKER_MALLOC`, which nudask's own cluster sets. Repeats are
interleaved (measure by measure, setting by setting) and the median is reported, per
wall-clock and per CPU second (steadier on a shared machine; page faults are CPU time
too), with minor page faults per event (``getrusage(...).ru_minflt``) over the timed
pass:

  floor            every compressed chunk under the events read once
                   (``read_direct_chunk``) and inflated by libdeflate into one reused
                   buffer: the bytes cannot be had faster;
  floor (alloc)    the same through ``deflate.zlib_decompress`` (a new buffer per chunk);
  numpy            the reader with ``kernel="numpy"`` (the reference);
  numba            the reader with ``kernel="numba"`` (the compiled kernel);
  run_chunk        nudask's task body with the kernel: read, render, sparsify, Parquet.

Each child first reads one chunk of events (numba: loads or compiles the kernel), then
times a pass over all events in chunks of ``--chunk-events``. Then the first call of
the kernel in a fresh process is timed against an empty and a filled Numba cache.

Run from the repository root (about 5 minutes on 2 cores at the defaults)::

    .venv/bin/python tests/benchmarks/bench_hotpath.py
    .venv/bin/python tests/benchmarks/bench_hotpath.py --events 40 --keep /tmp/nudask-hot --repeats 5
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

MEASURES = ("floor", "floor (alloc)", "numpy", "numba", "run_chunk")
RATES = ("events_per_s", "events_per_cpu_s")  # wall clock; CPU time (steadier on a shared machine)


def simulate(folder: str, events: int) -> str:
    from nudask.simulate import simulate_microboone

    path = os.path.join(folder, f"hot_{events}.h5")
    if not os.path.exists(path):
        simulate_microboone(path, n_events=events, geometry="microboone", seed=11)
    return path


def density(path: str) -> dict:
    """Bytes per event on disk (the adc column) and the share of non-zero samples."""
    from nudask.readers.row_blocks import RowBlocks

    with h5py.File(path) as f:
        adc = f["wire_table/adc"]
        events = len(f["event_table/event_id"])
        stored = sum(adc.id.get_chunk_info(i).size for i in range(adc.id.get_num_chunks()))
        nonzero = sum(int(np.count_nonzero(b)) for _, b in RowBlocks(adc).blocks(0, adc.shape[0]))
        return {
            "events": events,
            "file_bytes_per_event": os.path.getsize(path) / events,
            "adc_bytes_per_event": stored / events,
            "nonzero_percent": 100 * nonzero / adc.size,
        }


# -- what a child process measures -------------------------------------------------------
def inflate_all(path: str, reuse: bool) -> None:
    import deflate

    from nudask.readers.inflate_into import ZlibInflater

    with h5py.File(path) as f:
        dset = f["wire_table/adc"]
        rows, cols = dset.chunks
        out = np.empty(dset.chunks, dset.dtype)
        raw = np.empty(1 << 20, np.uint8)
        inflater = ZlibInflater()
        for r0 in range(0, dset.shape[0], rows):
            for c0 in range(0, dset.shape[1], cols):
                size = dset.id.get_chunk_info_by_coord((r0, c0)).size
                if raw.size < size:
                    raw = np.empty(2 * size, np.uint8)
                if reuse:
                    dset.id.read_direct_chunk((r0, c0), out=raw)
                    inflater.into(raw[:size], out)
                else:
                    deflate.zlib_decompress(dset.id.read_direct_chunk((r0, c0))[1], out.nbytes)


def child(measure: str, path: str, chunk_events: int, out: str) -> dict:
    from nudask import config
    from nudask.events import Chunk
    from nudask.pipeline import plan, run_chunk
    from nudask.readers.microboone import MicroBooNEReader

    with h5py.File(path) as f:
        n = len(f["event_table/event_id"])
    chunks = [Chunk(path, "microboone", s, min(s + chunk_events, n)) for s in range(0, n, chunk_events)]
    reader = MicroBooNEReader(kernel="numpy" if measure == "numpy" else "numba")
    if measure == "run_chunk":
        schema = plan([path], reader, events_per_chunk=chunk_events, on_error="raise", eight_bit=False).schema
        storage = {
            k: config.get(f"storage.{k.replace('_', '-')}")
            for k in ("row_group_events", "compression", "compression_level")
        }

    def one(chunk: Chunk) -> None:
        if measure == "run_chunk":
            run_chunk((chunk,), reader=reader, out=out, schema=schema, storage=storage)
        else:
            list(reader.read(chunk))

    if measure.startswith("floor"):
        inflate_all(path, measure == "floor")  # warm: page cache, buffers
    else:
        one(Chunk(path, "microboone", 0, min(chunk_events, n)))
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c0, t0 = time.process_time(), time.perf_counter()
    if measure.startswith("floor"):
        inflate_all(path, measure == "floor")
    else:
        for chunk in chunks:
            one(chunk)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return {"events_per_s": n / seconds, "events_per_cpu_s": n / cpu, "faults_per_event": faults / n}


def first_call(path: str) -> dict:
    """Seconds to import the reader and render the first event in a fresh process."""
    from nudask.events import Chunk
    from nudask.readers.microboone import MicroBooNEReader

    t0 = time.perf_counter()
    import nudask.readers.wire_kernel  # noqa: F401  (numba itself; the kernels compile or load on first call)

    imported = time.perf_counter()
    list(MicroBooNEReader().read(Chunk(path, "microboone", 0, 1)))
    first = time.perf_counter()
    list(MicroBooNEReader().read(Chunk(path, "microboone", 1, 2)))
    second = time.perf_counter()
    return {"import_s": imported - t0, "first_event_s": first - imported, "second_event_s": second - first}


def spawn(args: list[str], env: dict) -> dict:
    run = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False
    )
    if run.returncode:
        raise SystemExit(f"child {args} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20, help="full-geometry events simulated (default 20)")
    ap.add_argument("--chunk-events", type=int, default=10, help="events per reader chunk (default 10)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", help="folder for the simulated file (reused when present)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as out:
            result = first_call(args.path) if args.child == "first" else child(
                args.child, args.path, args.chunk_events, out
            )  # fmt: skip
        print(json.dumps(result))
        return

    import dask
    import distributed  # noqa: F401  (its defaults, the nanny's pre-spawn environment among them)

    from nudask.cluster import WORKER_MALLOC
    from nudask.readers.inflate_into import LIBDEFLATE

    folder = args.keep or tempfile.mkdtemp(prefix="nudask-hot-")
    os.makedirs(folder, exist_ok=True)
    path = simulate(folder, args.events)
    d = density(path)
    base = {k: v for k, v in os.environ.items() if k not in WORKER_MALLOC}
    base.update(OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    # a plain LocalCluster's nanny gives its workers Dask's pre-spawn environment
    # (MALLOC_TRIM_THRESHOLD_=65536), which also stops glibc adapting its mmap threshold
    dask_worker = {k: str(v) for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()}
    settings = {
        "glibc default": base,
        "Dask worker": {**base, **dask_worker},
        "WORKER_MALLOC": {**base, **WORKER_MALLOC},
    }
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeats):
        for measure in MEASURES:
            for name, env in settings.items():
                child_args = ["--child", measure, "--path", path, "--chunk-events", str(args.chunk_events)]
                results.setdefault((measure, name), []).append(spawn(child_args, env))

    def median(measure: str, setting: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(measure, setting)])

    print(
        f"density: {d['events']} full-geometry events, {d['file_bytes_per_event'] / 1e6:.2f} MB/event "
        f"on disk ({d['adc_bytes_per_event'] / 1e6:.2f} MB of adc chunks), "
        f"{d['nonzero_percent']:.3f} % non-zero samples"
    )
    print(f"one core per child; median of {args.repeats}; chunks of {args.chunk_events} events; {LIBDEFLATE}")
    # one floor for both settings (it allocates nothing, so they differ by noise only)
    floor = {k: statistics.median(r[k] for s in settings for r in results[("floor", s)]) for k in RATES}
    print(
        f"{'measure':<15}{'setting':<15}{'events/s':>10}{'/ floor':>9}{'events/CPU-s':>14}{'/ floor':>9}"
        f"{'faults/event':>14}"
    )
    for measure in MEASURES:
        for setting in settings:
            rate, cpu = (median(measure, setting, k) for k in RATES)
            faults = median(measure, setting, "faults_per_event")
            print(
                f"{measure:<15}{setting:<15}{rate:>10.2f}{rate / floor[RATES[0]]:>9.2f}"
                f"{cpu:>14.2f}{cpu / floor[RATES[1]]:>9.2f}{faults:>14.0f}"
            )
    for measure in ("numpy", "numba", "run_chunk"):
        ratios = [median(measure, "Dask worker", k) / median(measure, "WORKER_MALLOC", k) for k in RATES]
        print(f"{measure}: Dask worker / WORKER_MALLOC = {ratios[0]:.2f} (wall), {ratios[1]:.2f} (CPU)")

    with tempfile.TemporaryDirectory() as cache:
        env = {**base, "NUMBA_CACHE_DIR": cache}
        cold, warm = (spawn(["--child", "first", "--path", path], env) for _ in range(2))
    print(
        f"fresh process: importing numba and the kernel module {warm['import_s']:.2f} s; the first event "
        f"{cold['first_event_s']:.2f} s with an empty Numba cache (compiles), {warm['first_event_s']:.2f} s "
        f"with it filled (loads); the next event {warm['second_event_s']:.2f} s"
    )
    if not args.keep:
        for name in glob.glob(os.path.join(folder, "*.h5")):
            os.remove(name)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
