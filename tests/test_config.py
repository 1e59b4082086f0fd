"""nudask's dask.config defaults: registered by ``import nudask``; no ``dask.config.set`` drops them."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_defaults_survive_a_dask_config_set_block():
    out = _run(
        """
        import nudask, dask
        with dask.config.set({"nudask.preprocess.events-per-chunk": 1}):
            print(dask.config.get("nudask.preprocess.events-per-chunk"))
            print(dask.config.get("nudask.storage.compression"))
        print(dask.config.get("nudask.preprocess.events-per-chunk"))
        print(nudask.config.get("preprocess.events-per-chunk"))
        with dask.config.set({"nudask": {"preprocess": {"retries": 5}}}):  # replaces the whole section
            print(nudask.config.get("preprocess.retries"), nudask.config.get("preprocess.events-per-chunk"))
        print(dask.config.get("nudask.preprocess.retries"))
        """
    )
    assert out.split("\n") == ["1", "zstd", "20", "20", "5 20", "2", ""]


def test_importing_nudask_stays_light():
    out = _run(
        """
        import sys, nudask, dask
        print(dask.config.get("nudask.preprocess.events-per-chunk"))
        heavy = ("distributed", "pyarrow", "h5py", "tensorflow", "keras")
        print(sorted({m.split(".")[0] for m in sys.modules} & set(heavy)))
        """
    )
    assert out.split("\n") == ["20", "[]", ""]
