"""bench_preprocess's table: the figures of each density, the rows and their verdicts.

:class:`Measured` holds what one density's run measured; :func:`table_rows` turns a list
of columns (a density, or the ``--against`` checkout at that density) into rows, the
issue's targets first; :func:`profile_section` and :func:`bytes_section` say where the
time and the bytes go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

WIRES, BINS = (2400, 2400, 3456), 1067  # MicroBooNE's planes, 6400 ticks summed 6 at a time
PLANE_NAMES = ("u", "v", "y")
BINDINGS = ("libdeflate", "isal", "zlib-ng")
DENSE_BYTES = sum(WIRES) * BINS * 4  # a rendered event as dense float32 images


@dataclass
class Measured:
    """Everything measured at one density (medians of the repeated measures)."""

    density: str
    n: int  # events of the in-process measures
    file_bytes_per_event: float
    seconds: dict[str, float]
    extra: dict[str, dict]
    faults: dict[str, float]
    stages: dict[str, float]
    part_bytes: dict[str, int]  # storage -> bytes of the Parquet part of the n events
    columns: dict[str, dict[str, int]]  # storage -> top-level column -> compressed bytes
    pixels: int  # rendered (non-zero) pixels of the n events
    scale: dict | None = None
    scaling_events: int = 0
    first_part: dict[str, dict[str, float]] = field(default_factory=dict)  # checkout -> stage -> s
    other: dict | None = None  # the --against checkout's run_chunk figures

    def rate(self, name: str) -> float:
        return self.n / self.seconds[name]

    @property
    def nnz_fraction(self) -> float:
        return self.extra["h5py"]["nnz"] / self.extra["h5py"]["samples"]

    @property
    def pixels_per_event(self) -> float:
        return self.pixels / self.n

    def bytes_per_event(self, storage: str) -> float:
        return self.part_bytes[storage] / self.n

    @property
    def png_per_event(self) -> float:
        return self.extra["notebook"]["bytes"] / self.n

    @property
    def bindings(self) -> list[str]:
        """The inflate bindings timed (ISA-L only where installed)."""
        return [b for b in BINDINGS if b in self.seconds]

    @property
    def best_binding(self) -> str:
        return max(self.bindings, key=self.rate)


def verdict(value: float, target: str) -> str:
    """``pass`` or ``FAIL`` of ``value`` against a target such as ``>= 0.6``.

    >>> verdict(0.61, ">= 0.6"), verdict(2.6, "<= 2.1"), verdict(float("nan"), ">= 1")
    ('pass', 'FAIL', 'n/a')
    """
    if value != value:  # NaN: not measured
        return "n/a"
    op, bound = target.split()
    ok = value >= float(bound) if op == ">=" else value <= float(bound)
    return "pass" if ok else "FAIL"


@dataclass
class Row:
    measure: str
    unit: str
    cells: list[str]
    target: str = ""


Column = tuple[str, Measured, bool]  # header, the density's figures, whether the other checkout's


class NotBuilt(Exception):
    """A storage the checkout cannot write (no ``--values float16`` before it was built)."""


def cell(value: float | None, fmt: str, target: str = "", note: str = "") -> str:
    """A value, its verdict against ``target`` and a note (e.g. the control's ratio).

    >>> cell(0.412, ".2f", ">= 0.6"), cell(1.45, ".2f", ">= 1.7", "control 1.92 x"), cell(None, ".2f")
    ('0.41 FAIL', '1.45 (control 1.92 x) FAIL', '')
    """
    if value is None:
        return ""
    text = format(value, fmt) + (f" ({note})" if note else "")
    return f"{text} {verdict(value, target)}" if target else text


def table_rows(columns: list[Column]) -> list[Row]:
    """Every row of the table, one cell per column (empty where that column has no figure)."""
    rows: list[Row] = []

    def add(
        measure: str,
        unit: str,
        get: Callable[[Measured, bool], float | None],
        fmt=".2f",
        target="",
        note=None,
    ):
        cells = []
        for _, m, is_other in columns:
            try:
                value = get(m, is_other)
            except NotBuilt:
                cells.append("n/a (not built)")
                continue
            except (KeyError, TypeError, ZeroDivisionError):  # not measured in this run
                value = None
            cells.append(cell(value, fmt, target, note(m) if note and value is not None else ""))
        rows.append(Row(measure, unit, cells, target))

    def nudask_rate(m: Measured, other: bool) -> float:
        return m.n / m.other["seconds"] if other else m.rate("nudask")  # type: ignore[index]

    def bytes_of(m: Measured, other: bool, storage: str) -> float:
        written = m.other["bytes"] if other else m.part_bytes  # type: ignore[index]
        if storage not in written:
            raise NotBuilt(storage)
        return written[storage] / m.n if other else m.bytes_per_event(storage)

    def this(get):  # a measure only this checkout's run gives
        return lambda m, other: None if other else get(m)

    def scale(m: Measured, kind: str, n: int) -> float:
        return m.scaling_events / m.scale["seconds"][kind, n]  # type: ignore[index]

    def control(m: Measured, kind: str) -> str:
        c = m.scale["control"]  # type: ignore[index]
        return f"control {c[kind, 1] / c[kind, 2]:.2f} x"

    def first(m: Measured, other: bool, key: str) -> float:
        return m.first_part["other" if other else "this"][key]

    dense = DENSE_BYTES
    # the targets
    add(
        "nudask / inflate-only floor (b)",
        "x",
        lambda m, o: nudask_rate(m, o) / m.rate(m.best_binding),
        target=">= 0.6",
    )
    add(
        "plain LocalCluster / nudask's cluster, events/s per worker (1 worker)",
        "x",
        this(lambda m: scale(m, "dask", 1) / scale(m, "nudask", 1)),
        target=">= 0.9",
    )
    add(
        "2 workers / 1 worker, nudask's cluster (pure-CPU control's own ratio)",
        "x",
        this(lambda m: scale(m, "nudask", 2) / scale(m, "nudask", 1)),
        target=">= 1.7",
        note=lambda m: control(m, "nudask"),
    )
    add(
        "lossless Parquet / notebook 8-bit PNG",
        "x",
        lambda m, o: bytes_of(m, o, "float32") / m.png_per_event,
        target="<= 2.1",
    )
    add(
        "dense float32 / lossless Parquet",
        "x",
        lambda m, o: dense / bytes_of(m, o, "float32"),
        fmt=".0f",
        target=">= 140",
    )
    add(
        "`--values float16` Parquet / PNG",
        "x",
        lambda m, o: bytes_of(m, o, "float16") / m.png_per_event,
        target="<= 1.2",
    )
    add(
        "`--eight-bit` Parquet / PNG",
        "x",
        lambda m, o: bytes_of(m, o, "eight_bit") / m.png_per_event,
        target="<= 0.75",
    )
    add(
        "time to first part, `nudask preprocess`",
        "s",
        lambda m, o: first(m, o, "`nudask preprocess`: first part, from the command's start"),
    )
    add(
        "time to first part, `preprocess()` from the call",
        "s",
        lambda m, o: first(m, o, "preprocess(): time to first part, from the call"),
    )
    # throughput, one worker
    add("events (full geometry, simulated)", "events", this(lambda m: m.n), fmt="d")
    add(
        "floor (a): h5py adc[a:b] per event (once)",
        "events/s",
        this(lambda m: m.rate("h5py")),
        note=lambda m: f"{m.extra['h5py']['samples'] * 4 / m.seconds['h5py'] / 1e9:.2f} GB/s out",
    )
    add("read_direct_chunk only, no inflate", "events/s", this(lambda m: m.rate("read only")), fmt=".0f")
    for b in dict.fromkeys(b for _, m, _ in columns for b in m.bindings):
        add(
            f"read_direct_chunk + {b}" + ("" if b == "libdeflate" else " (once)"),
            "events/s",
            this(lambda m, b=b: m.rate(b)),
            note=lambda m, b=b: f"{m.extra[b]['bytes'] / m.seconds[b] / 1e9:.2f} GB/s out",
        )
    add(
        "floor (b): the fastest binding",
        "events/s",
        this(lambda m: m.rate(m.best_binding)),
        note=lambda m: m.best_binding,
    )
    add("nudask run_chunk (read+render+sparsify+write)", "events/s", nudask_rate)
    add("notebook (pandas + block sum + PNG, once)", "events/s", this(lambda m: m.rate("notebook")))
    add("nudask / floor (a)", "x", lambda m, o: nudask_rate(m, o) / m.rate("h5py"), target=">= 1.3")
    add("nudask / notebook", "x", lambda m, o: nudask_rate(m, o) / m.rate("notebook"), target=">= 4")
    add("minor page faults: nudask", "per event", this(lambda m: m.faults["nudask"] / m.n), fmt=".0f")
    # storage
    add("dense float32 image (3 planes x 1067 bins)", "MB/event", this(lambda m: dense / 1e6))
    for storage, name in (
        ("float32", "float32 (lossless)"),
        ("float16", "--values float16"),
        ("eight_bit", "--eight-bit"),
    ):
        add(f"nudask Parquet, {name}", "kB/event", lambda m, o, s=storage: bytes_of(m, o, s) / 1e3, fmt=".1f")
        add(
            f"  per rendered pixel, {name}",
            "B",
            lambda m, o, s=storage: bytes_of(m, o, s) / m.pixels_per_event,
        )
    add("notebook 8-bit PNG (3 planes)", "kB/event", this(lambda m: m.png_per_event / 1e3), fmt=".1f")
    add("  per rendered pixel, PNG", "B", this(lambda m: m.png_per_event / m.pixels_per_event))
    # scaling
    for kind, name in (("nudask", "nudask local_cluster"), ("dask", "plain LocalCluster (Dask defaults)")):
        add(f"preprocess, {name}, 1 worker", "events/s", this(lambda m, k=kind: scale(m, k, 1)))
        add(f"preprocess, {name}, 2 workers", "events/s", this(lambda m, k=kind: scale(m, k, 2)))
        add(
            f"  2 workers / 1 worker, {name}",
            "x",
            this(lambda m, k=kind: scale(m, k, 2) / scale(m, k, 1)),
            note=lambda m, k=kind: control(m, k),
        )
    # time to first part, by stage
    keys = next((list(m.first_part["this"]) for _, m, _ in columns if m.first_part), [])
    for key in keys:
        if "first part, from" not in key:
            add(f"first part: {key}", "s", lambda m, o, k=key: first(m, o, k))
    return rows


def render_table(head: list[str], rows: list[Row], markdown: bool) -> str:
    header = ["measure", "unit", "target", *head]
    body = [[r.measure, r.unit, r.target, *r.cells] for r in rows if any(r.cells)]
    if markdown:
        rule = "|---|---|---|" + "---:|" * len(head)
        return "\n".join(
            ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(r) + " |" for r in body]
        )
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'>' if i >= 3 else '<'}{w}}}" for i, w in enumerate(widths))
    return "\n".join(
        [fmt.format(*header), "  ".join("-" * w for w in widths)] + [fmt.format(*r) for r in body]
    )


def density_line(m: Measured) -> str:
    return (
        f"{m.density}: {m.file_bytes_per_event / 1e6:.2f} MB/event on disk (the whole file), "
        f"{100 * m.nnz_fraction:.3f} % of wire_table/adc samples non-zero, "
        f"{m.pixels_per_event:,.0f} rendered pixels/event (non-zero after the 6-tick sum and cut-off)"
    )


def missed(rows: list[Row], *names: str) -> bool:
    return any(r.measure in names and any("FAIL" in c for c in r.cells) for r in rows)


def profile_section(results: list[Measured]) -> str:
    """Where the time goes, by stage, against the inflate-only floor (b)."""
    lines = ["Where the time goes (cProfile of run_chunk, ms per event; the floor is inflate only):"]
    for m in results:
        floor = 1e3 / m.rate(m.best_binding)
        profiled = 1e3 * m.seconds["profile"] / m.n
        lines.append(
            f"  {m.density}: run_chunk {1e3 / m.rate('nudask'):.1f} unprofiled, {profiled:.1f} under "
            f"cProfile; floor (b) {floor:.1f}; the 0.6 target allows {floor / 0.6:.1f}"
        )
        for stage, seconds in m.stages.items():
            if seconds > 0:
                lines.append(
                    f"    {1e3 * seconds / m.n:7.1f}  ({100 * seconds / m.seconds['profile']:3.0f} %)"
                    f"  {stage}"
                )
    return "\n".join(lines)


def bytes_section(results: list[Measured]) -> str:
    """Where the bytes go: each storage's columns per event and per rendered pixel, against the PNG."""
    lines = ["Where the bytes go (Parquet column chunks, compressed; the notebook's PNG for reference):"]
    for m in results:
        px = m.pixels_per_event
        lines.append(
            f"  {m.density}: PNG {m.png_per_event / 1e3:.1f} kB/event ({m.png_per_event / px:.2f} B/pixel)"
        )
        for storage, sizes in m.columns.items():
            groups = column_groups(sizes)
            groups["footer (schema, nudask metadata, statistics)"] = m.part_bytes[storage] - sum(
                sizes.values()
            )
            lines.append(f"    {storage}: {m.part_bytes[storage] / m.n / 1e3:.1f} kB/event")
            for name, b in groups.items():
                lines.append(f"      {b / m.n / 1e3:7.1f} kB  {b / m.n / px:5.2f} B/pixel  {name}")
    return "\n".join(lines)


def column_groups(sizes: dict[str, int]) -> dict[str, int]:
    """Bytes by role: each view's coordinates and values, and the rest (ids, truth, shapes).

    >>> column_groups({"u_wire": 5, "u_time": 7, "u_value": 20, "v_value": 3, "run": 1, "u_shape": 1})
    {'u indices (u_time, u_wire)': 12, 'u values': 20, 'v values': 3, 'ids, truth, shapes': 2}
    """
    out: dict[str, int] = {}
    for view in PLANE_NAMES:
        coords = sorted(
            k for k in sizes if k.startswith(f"{view}_") and k not in (f"{view}_value", f"{view}_shape")
        )
        if coords:
            out[f"{view} indices ({', '.join(coords)})"] = sum(sizes[k] for k in coords)
        if f"{view}_value" in sizes:
            out[f"{view} values"] = sizes[f"{view}_value"]
    out["ids, truth, shapes"] = sum(sizes.values()) - sum(out.values())
    return out
