"""``python -m nudask.train`` as one SLURM task, recording what this rank did (for the tests).

Run as ``python tests/rank_probe.py -m nudask.train ARGS``: into ``$NUDASK_PROBE_DIR`` it writes
``rank_R.pid`` at the start, and once training has ended ``rank_R.json`` (the training rows this
rank read, by epoch and batch) and ``rank_R.npz`` (its final weights).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    out, rank = Path(os.environ["NUDASK_PROBE_DIR"]), os.environ["SLURM_PROCID"]  # read when run
    assert sys.argv[1:3] == ["-m", "nudask.train"], sys.argv
    (out / f"rank_{rank}.pid").write_text(str(os.getpid()))
    import keras

    from nudask.train import __main__ as cli
    from nudask.train.stream import BatchSource

    read: dict[int, dict[int, list[int]]] = {}  # epoch -> batch -> rows (a batch may be asked twice)
    batch = BatchSource.batch

    def recorded(self, i, **kw):
        made = batch(self, i, **kw)
        if self.shuffle:  # the training split
            epoch = self.epoch if kw.get("epoch") is None else kw["epoch"]
            read.setdefault(epoch, {})[i] = self.batch_rows(i, epoch).tolist()
        return made

    fit = keras.Model.fit

    def fitted(self, *args, **kw):
        history = fit(self, *args, **kw)
        np.savez(out / f"rank_{rank}.npz", *self.get_weights())
        (out / f"rank_{rank}.json").write_text(json.dumps(read))
        return history

    BatchSource.batch = recorded
    keras.Model.fit = fitted
    return cli.main(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
