"""Where the work runs: the current Dask client, or a LocalCluster made here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from . import config


def local_cluster(**overrides) -> LocalCluster:
    """A LocalCluster of single-threaded worker processes bound to loopback."""
    opts = {k.replace("-", "_"): v for k, v in config.get("local-cluster").items()}
    opts.update(overrides)
    return LocalCluster(processes=True, dashboard_address=opts.pop("dashboard_address"), **opts)


def current_client() -> Client | None:
    try:
        from distributed import get_client

        return get_client()
    except ValueError:
        return None


@contextmanager
def client_or_local(client: Client | None = None, *, verbose: bool = True) -> Iterator[Client]:
    """Yield ``client``, else the current one, else one on a new LocalCluster (closed after)."""
    client = client or current_client()
    if client is not None:
        yield client
        return
    with local_cluster() as cluster, Client(cluster) as client:
        if verbose:
            print(f"nudask: local Dask cluster with {len(cluster.workers)} workers; "
                  f"dashboard: {client.dashboard_link}", flush=True)
        yield client
