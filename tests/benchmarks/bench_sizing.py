"""How long a whole sample takes on N SLURM nodes, from a measured per-core rate.

The estimate is the slowest of three limits, each stated so a reader can redo it:

* cores: ``nodes x cores_per_node`` single-threaded workers at the measured events/s
  per core (one worker per core, as ``preprocess`` and the SLURM profiles start them);
* tasks: a run has ``ceil(events / events_per_chunk)`` tasks, so no more workers than
  that are busy, and no run is shorter than one task;
* reading: each node reads its inputs at ``read_gbs_per_node`` from the shared file
  system, and all nodes together at no more than ``filesystem_gbs``.

Cluster start, SLURM queue waits and the time to the first part come on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The public inclusive WithWire sample (anchors.md): 24,332 events in 18 files, 44 GB
INCLUSIVE_EVENTS = 24_332
INCLUSIVE_BYTES = 44e9


@dataclass(frozen=True)
class Sizing:
    nodes: int
    workers: int  # cores given work: min(cores, tasks)
    seconds: float
    limit: str  # which of cores / tasks / reading sets the time
    core_hours: float  # cores held x wall time


def size_run(
    per_core: float,
    nodes: int,
    *,
    events: int = INCLUSIVE_EVENTS,
    input_bytes: float = INCLUSIVE_BYTES,
    cores_per_node: int = 32,
    events_per_chunk: int = 20,
    read_gbs_per_node: float = 1.0,
    filesystem_gbs: float = 20.0,
) -> Sizing:
    """The wall time of ``events`` on ``nodes`` nodes at ``per_core`` events/s per core.

    >>> s = size_run(10.0, 1)  # 1217 tasks in 39 waves of 32 (2 s each); reading at 1 GB/s: 44 s
    >>> s.workers, round(s.seconds), s.limit, round(s.core_hours, 1)
    (32, 78, 'cores', 0.7)
    >>> s = size_run(10.0, 100)  # 1217 tasks for 3200 cores; 20 GB/s shared: 2.2 s
    >>> s.workers, round(s.seconds, 1), s.limit
    (1217, 2.2, 'reading')
    >>> s = size_run(10.0, 100, filesystem_gbs=1000)  # then one task of 20 events: 2 s
    >>> s.seconds, s.limit
    (2.0, 'tasks')
    """
    if per_core <= 0 or nodes < 1:
        raise ValueError(
            f"need a positive rate and at least one node, got {per_core} events/s, {nodes} nodes"
        )
    tasks = math.ceil(events / events_per_chunk)
    cores = nodes * cores_per_node
    workers = min(cores, tasks)
    # whole waves of tasks: a worker runs its tasks one after the other
    compute = math.ceil(tasks / workers) * events_per_chunk / per_core
    reading = input_bytes / 1e9 / min(nodes * read_gbs_per_node, filesystem_gbs)
    limit = "reading" if reading > compute else ("tasks" if tasks < cores else "cores")
    seconds = max(compute, reading)
    return Sizing(nodes, workers, seconds, limit, cores * seconds / 3600)


def duration(seconds: float) -> str:
    """``seconds`` as the unit a person would say.

    >>> duration(42.4), duration(1500), duration(7 * 3600 + 1800)
    ('42 s', '25 min', '7.5 h')
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sizing_table(per_core: float, source: str, node_counts=(1, 10, 100), **assumed) -> str:
    """Markdown: the inclusive sample on 1, 10 and 100 nodes, with the assumptions stated."""
    cores = assumed.get("cores_per_node", 32)
    read = assumed.get("read_gbs_per_node", 1.0)
    shared = assumed.get("filesystem_gbs", 20.0)
    chunk = assumed.get("events_per_chunk", 20)
    lines = [
        f"Sizing: the inclusive WithWire sample ({INCLUSIVE_EVENTS:,} events, "
        f"{INCLUSIVE_BYTES / 1e9:.0f} GB) at {per_core:.2f} events/s per core ({source}); "
        f"{cores} cores per node, one single-threaded worker each; {chunk} events per task; "
        f"inputs read at {read:g} GB/s per node and at most {shared:g} GB/s from the shared "
        "file system together (a shared file system may give less: then reading sets the "
        "time). Cluster start and queue waits not included.",
        "",
        "| nodes | workers busy | wall time | set by | core-hours |",
        "|---:|---:|---:|---|---:|",
    ]
    for n in node_counts:
        s = size_run(per_core, n, **assumed)
        lines.append(f"| {n} | {s.workers} | {duration(s.seconds)} | {s.limit} | {s.core_hours:.1f} |")
    return "\n".join(lines)
