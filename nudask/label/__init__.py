"""``nudask label DATASET``: a small local web app to label a dataset's events by hand.

Each event goes to ``k`` annotators (never twice to one); labels are kept in
an SQLite database beside the dataset (:mod:`nudask.label.store`); a QA page
shows the agreement (per class, Cohen's and Fleiss' kappa) and the events to
settle; the consensus (majority, ties flagged) is exported as a Parquet table
keyed by the event identity, which training reads with ``task.labels``.
"""

from __future__ import annotations

import sys

from .app import Labelling
from .store import DB_NAME, LabelStore

__all__ = ["DB_NAME", "LabelStore", "Labelling", "serve"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve(app: Labelling, host: str = "127.0.0.1", port: int = 8765, *, verbose: bool = True) -> None:
    """Serve ``app`` until interrupted, saying where (and warning when it is not local only)."""
    from .server import LabelServer

    server = LabelServer(app, host, port, verbose=verbose)
    if host not in LOCAL_HOSTS:
        print(
            f"nudask label: warning: listening on {host}, reachable from other machines; "
            "anyone who reaches it can read the events and write labels",
            file=sys.stderr,
            flush=True,
        )
    where = "this machine only" if host in LOCAL_HOSTS else host
    print(
        f"nudask label: {len(app.keys)} events of {app.path}, {app.k} annotators each; "
        f"serving on {server.url} ({where}); labels in {app.store.path}; Ctrl-C to stop",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
