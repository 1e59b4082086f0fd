"""Find-Michels solve: images/s on 1 and on 2 single-threaded local workers, side by side.

    python tests/benchmarks/bench_michel_solve.py XYZE.h5 [--images N] [--run RUN] [--chunk 25]

Runs ``nudask.michel.solve`` with the DBSCAN baseline (and, with ``--run``, a trained
network's run folder) on the first N images of XYZE (copied into a file of the same layout),
on a LocalCluster of 1 and then 2 workers of one thread each. Columns: wall time (cluster
start excluded, first-task start-up such as the model's build included), images/s,
images/s per busy core, and the speed-up of 2 workers over 1 (target 1.6x).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


def main() -> None:
    from distributed import Client

    from nudask.cluster import local_cluster
    from nudask.michel.model import RunPredictor
    from nudask.michel.solve import BaselinePredictor, solve
    from nudask.readers import get_reader
    from nudask.readers.inss.simulate import write_vlen

    p = argparse.ArgumentParser()
    p.add_argument("xyze")
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--run", help="a trained run folder (python -m nudask.michel train)")
    p.add_argument("--chunk", type=int, default=25, help="images per task")
    a = p.parse_args()
    predictors = {"baseline": BaselinePredictor()}
    if a.run:
        predictors["network"] = RunPredictor(a.run)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "bench_xyze.h5")
        with h5py.File(a.xyze) as f:
            n = min(a.images, f["data"].shape[0])
            data = list(f["data"][:n])
        write_vlen(src, "data", data, np.float32)
        voxels = sum(d.size // 4 for d in data) / n
        for name, predictor in predictors.items():
            images = n if name == "baseline" else min(n, 200)
            path = src
            if images < n:
                path = os.path.join(tmp, "bench_xyze_few.h5")
                write_vlen(path, "data", data[:images], np.float32)
            walls = {}
            for workers in (1, 2):
                with (
                    local_cluster(
                        n_workers=workers, threads_per_worker=1, dashboard_address="127.0.0.1:0"
                    ) as c,
                    Client(c) as cl,
                ):
                    cl.wait_for_workers(workers)
                    out = os.path.join(tmp, f"{name}_{workers}.h5")
                    info = solve(
                        path, out, predictor, reader=get_reader("inss", labels="none"),
                        images_per_chunk=a.chunk, client=cl, progress=False,
                    )  # fmt: skip
                walls[workers] = info["wall_s"]
                rows.append((name, images, workers, info))
            rows.append((name, images, "2 vs 1", walls[1] / walls[2]))
    print(f"{n} images, {voxels:.0f} voxels per image, chunks of {a.chunk} images")
    print("| predictor | images | workers | wall s | images/s | images/s per core | 2 vs 1 |")
    print("|---|---|---|---|---|---|---|")
    for name, images, workers, info in rows:
        if isinstance(info, float):
            print(f"| {name} | {images} | | | | | **{info:.2f}x** |")
        else:
            print(
                f"| {name} | {images} | {workers} | {info['wall_s']:.1f} | {info['images_per_s']:.1f} |"
                f" {info['images_per_core_s']:.1f} | |"
            )


if __name__ == "__main__":
    main()
