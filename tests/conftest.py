"""Shared fixtures: simulated inputs (small geometry) and Dask clients."""

from __future__ import annotations

import os
import sys

import pytest
from distributed import Client, LocalCluster

# a third-party reader plugin, found through its entry point like an installed one (plugins/README.md)
PLUGINS = os.path.join(os.path.dirname(__file__), "plugins")
sys.path.insert(0, PLUGINS)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (PLUGINS, os.environ.get("PYTHONPATH")) if p)

from nudask.simulate import simulate_microboone, simulate_nova  # noqa: E402 - after the plugin path

SMALL = {"geometry": "small"}


@pytest.fixture(scope="session")
def bnb_files(tmp_path_factory):
    """Two small-geometry inclusive files, 9 and 7 events."""
    folder = tmp_path_factory.mktemp("bnb")
    return [
        str(
            simulate_microboone(
                folder / f"bnb_WithWire_{k:02d}.h5",
                n_events=n,
                seed=k,
                geometry="small",
                subrun=k,
                first_event=1 + 100 * k,
                chunk_rows=200,
            )
        )
        for k, n in enumerate((9, 7))
    ]


@pytest.fixture(scope="session")
def nova_file(tmp_path_factory):
    return str(simulate_nova(tmp_path_factory.mktemp("nova") / "neutrino1.h5", n_events=40, seed=3))


@pytest.fixture(scope="module")
def client():
    """An in-process Dask cluster: quick to start, enough for most tests."""
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # TensorFlow's native teardown can abort the interpreter ("double free or
    # corruption") after every test has passed and pytest has reported; end the
    # process with pytest's own status instead of running that teardown.
    if "tensorflow" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash.get(EXIT_STATUS, 0))
