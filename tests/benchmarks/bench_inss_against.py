"""The INSS reader of another checkout (e.g. a previous commit) beside this one's.

    git worktree add /tmp/prev COMMIT
    python tests/benchmarks/bench_inss_against.py /tmp/prev XYZE.h5 [--images N] [--rounds 2]

Each side reads the first N images with ``INSSReader.read`` (chunks of 200, labels none and
paired) in its own process, best of 7; the sides alternate for ``--rounds`` rounds, and the
table gives each side's best and the speed-up of this checkout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIMING = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from nudask.events import Chunk
from nudask.readers import get_reader
path, n = sys.argv[2], int(sys.argv[3])
for labels in ("none", "auto"):
    r = get_reader("inss", labels=labels)
    best = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        for a in range(0, n, 200):
            sum(ev.images["voxels"].nnz for ev in r.read(Chunk(path, "inss", a, min(a + 200, n))))
        best = min(best, time.perf_counter() - t)
    print(labels, best)
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("other", help="the other checkout's root")
    p.add_argument("xyze")
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    best: dict[tuple[str, str], float] = {}
    for _ in range(a.rounds):
        for side, root in (("other", a.other), ("this", HERE)):
            out = subprocess.run(
                [sys.executable, "-c", TIMING, root, a.xyze, str(a.images)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            for line in out.splitlines():
                labels, s = line.split()
                best[(side, labels)] = min(best.get((side, labels), float("inf")), float(s))
    print("| labels | other checkout | this checkout | this / other |")
    print("|---|---|---|---|")
    for labels in ("none", "auto"):
        o, t = best[("other", labels)], best[("this", labels)]
        rates = f"{o:.3f} s ({a.images / o:.0f}/s) | {t:.3f} s ({a.images / t:.0f}/s)"
        print(f"| {labels} | {rates} | **{o / t:.2f}x** |")


if __name__ == "__main__":
    main()
