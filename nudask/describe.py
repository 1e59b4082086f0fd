"""What a dataset holds and what it costs: event counts, truth, energies, bytes.

:func:`summarize` gives a JSON-serialisable dict, :func:`format_summary` the
plain-text report and :func:`plot_summary` the charts of a storage
write-up: bytes on disk and in memory per representation, and
the true energy per class. Truth is read through the roles the reader
declared (:mod:`nudask.roles`): every label role is counted, the energy role
gives the statistics; roles whose columns are absent are skipped. Images are
read for a small sample of events only.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .display import display_array, planar_images, to_uint8
from .records import Manifest
from .roles import Roles


def sample_indices(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` event numbers spread evenly over ``0 .. n-1`` (deterministic).

    >>> sample_indices(100, 5).tolist()
    [0, 25, 50, 74, 99]
    """
    if n <= 0 or k <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64))


def energy_stats(values: np.ndarray) -> dict[str, float | int | None]:
    """Count, mean, median, std (population, ddof=0), min, max and quartiles; NaNs dropped."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0, **dict.fromkeys(("mean", "median", "std", "min", "max", "q25", "q75"))}
    q25, median, q75 = np.percentile(v, [25, 50, 75])
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "median": float(median),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "q25": float(q25),
        "q75": float(q75),
    }


def class_columns(meta: pd.DataFrame, roles: Roles) -> dict[str, pd.Series]:
    """Class names per event of every label role whose columns the metadata has.

    The first is the headline split (the energy chart's); labels with no
    vocabulary (e.g. PDG codes) are counted by value.
    """
    out: dict[str, pd.Series] = {}
    for name, label in roles.labels.items():
        if all(c in meta for c in label.columns):
            out[name] = pd.Series(label.names(meta), index=meta.index, dtype=object)
    return out


def headline_classes(labels: dict[str, pd.Series]) -> pd.Series | None:
    """The headline split: the first label of the reader's roles."""
    return next(iter(labels.values()), None)


def _counts(labels: pd.Series) -> dict[str, int]:
    counts = labels.value_counts(sort=False)
    order = sorted(counts.index, key=lambda k: (-counts[k], k))  # largest first, then by name
    return {str(k): int(counts[k]) for k in order}


def _inputs(manifest: Manifest) -> list[dict[str, Any]]:
    written: dict[str, list[int]] = {}  # input -> [events, parts, bytes]
    for part in manifest.files:
        rows = {c.path: len(c) for c in part.chunks}
        for path, n in rows.items():  # a part's bytes are shared by the inputs it holds, by events
            w = written.setdefault(path, [0, 0, 0])
            w[0] += n
            w[1] += 1
            w[2] += round(part.bytes * n / max(part.rows, 1))
    out = []
    for inp in manifest.inputs:
        events, parts, size = written.get(inp.path, [0, 0, 0])
        lost = sum(f.events for f in manifest.failed if f.path == inp.path)
        out.append(
            {
                "path": inp.path,
                "size": inp.size,
                "events": inp.events,
                "written": events,
                "failed_events": lost,
                "parquet_files": parts,
                "parquet_bytes": size,
            }
        )
    return out


def _views(ds) -> dict:
    return ds.views if ds.files else {}


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def storage(ds, sample: int = 20) -> dict[str, Any]:
    """Bytes of the dataset as Parquet, as dense float32 images, as 8-bit PNGs and as COO.

    PNG and in-memory COO sizes are measured on :func:`sample_indices` events
    and extrapolated to the whole dataset; the rest is exact.
    """
    from PIL import Image

    n = len(ds)
    parquet = sum(f.bytes for f in ds.manifest.files)
    dense_event = 4 * sum(int(np.prod(v.shape)) for v in _views(ds).values())
    picks = sample_indices(n, sample)
    png = coo = 0
    for i in picks:  # one event in memory at a time
        coo += sum(a.nbytes for c in ds.coo(int(i)).values() for a in (*c.index, *c.channels.values()))
        for name, image in planar_images(ds, int(i)).items():
            spec = ds.views[name]
            buf = io.BytesIO()
            Image.fromarray(to_uint8(display_array(image, spec), spec)).save(buf, format="PNG")
            png += buf.tell()
    png_event = png / len(picks) if len(picks) else 0.0
    coo_event = coo / len(picks) if len(picks) else 0.0
    return {
        "input_bytes": sum(i.size for i in ds.manifest.inputs),
        "parquet_bytes": parquet,
        "parquet_per_event": _ratio(parquet, n),
        "dense_bytes": n * dense_event,
        "dense_per_event": dense_event,
        "png_sample_events": len(picks),
        "png_per_event": png_event,
        "png_bytes": round(png_event * n),
        "coo_per_event": coo_event,
        "coo_bytes": round(coo_event * n),
        "dense_over_parquet": _ratio(n * dense_event, parquet),
        "dense_over_png": _ratio(dense_event, png_event),
        "png_over_parquet": _ratio(png_event * n, parquet),
        "dense_over_coo": _ratio(dense_event, coo_event),
    }


def summarize(ds, *, sample: int = 20) -> dict[str, Any]:
    """Everything :func:`format_summary` reports, as plain JSON-serialisable data.

    Parameters
    ----------
    ds : nudask.Dataset
        An opened dataset.
    sample : int
        Events whose images are encoded as PNGs (and measured as COO) to
        estimate those sizes for the whole dataset.

    Returns
    -------
    dict
        ``events``, ``files``, ``inputs`` (per input file), ``failed``,
        ``counts`` (label -> {value: events}), ``energy`` (column, ``all`` and
        per-label statistics, absent without an energy column) and ``storage``.
    """
    meta = ds.metadata if ds.files else pd.DataFrame()  # every chunk failed: no schema
    roles = ds.roles
    labels = class_columns(meta, roles)
    out: dict[str, Any] = {
        "path": os.fspath(ds.path),
        "reader": ds.manifest.reader,
        "events": len(ds),
        "files": len(ds.files),
        "views": {
            k: {"axes": list(v.axes), "shape": list(v.shape), "vmax": v.vmax} for k, v in _views(ds).items()
        },
        "inputs": _inputs(ds.manifest),
        "failed": [f.to_json() for f in ds.manifest.failed],
        "counts": {name: _counts(s) for name, s in labels.items()},
    }
    if roles.energy is not None and roles.energy.column in meta:
        column = roles.energy.column
        energy = meta[column].to_numpy(np.float64)
        out["energy"] = {
            "column": column,
            "unit": roles.energy.unit,
            "all": energy_stats(energy),
            "by": {
                name: {str(k): energy_stats(energy[(s == k).to_numpy()]) for k in out["counts"][name]}
                for name, s in labels.items()
            },
        }
    out["storage"] = storage(ds, sample)
    return out


def human_bytes(n: float | None) -> str:
    """``1234567`` -> ``'1.23 MB'`` (decimal units, as in the write-up).

    >>> human_bytes(999), human_bytes(1234567), human_bytes(None)
    ('999 B', '1.23 MB', '-')
    """
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def table(headers: list[str], rows: list[list[Any]], left: tuple[int, ...] = (0,)) -> str:
    """Aligned text table: columns ``left`` left-aligned, the others right-aligned.

    >>> print(table(["pdg", "events"], [["14", 7], ["-12", 12]]))
    pdg  events
    ---  ------
    14        7
    -12      12
    """
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]

    def line(r: list[str]) -> str:
        parts = [c.ljust(w) if k in left else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(parts).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a plain-text report of aligned tables."""
    s, n = summary, summary["events"]
    parts = [
        f"nudask dataset {s['path']}  (reader {s['reader']})",
        f"{n} events in {s['files']} Parquet files; views "
        + (", ".join(f"{k} {'x'.join(map(str, v['shape']))}" for k, v in s["views"].items()) or "-"),
    ]
    rows = [
        [
            os.path.basename(i["path"]),
            i["events"],
            i["written"],
            i["failed_events"],
            i["parquet_files"],
            human_bytes(i["size"]),
            human_bytes(i["parquet_bytes"]),
        ]
        for i in s["inputs"]
    ]
    parts += [
        "",
        "Events per input file",
        table(["file", "events", "written", "failed", "parts", "input", "parquet"], rows),
    ]
    if s["failed"]:
        rows = [
            [
                os.path.basename(f["path"]),
                f"{f['start']}-{f['stop']}" if "start" in f else "whole file",
                f["error"],
            ]
            for f in s["failed"]
        ]
        parts += ["", f"Failed ({len(s['failed'])})", table(["file", "events", "error"], rows, left=(0, 2))]
    for name, counts in s["counts"].items():
        rows = [[k, v, f"{100 * v / n:.1f} %" if n else "-"] for k, v in counts.items()]
        parts += ["", f"Events per {name}", table([name, "events", "share"], rows)]
    if "energy" in s:
        e = s["energy"]
        head = [e["column"], "n", "mean", "median", "std", "min", "max", "q25", "q75"]

        def row(label: str, st: dict) -> list[Any]:
            return [label, st["n"], *(_num(st[k]) for k in head[2:])]

        rows = [row("all", e["all"])]
        for name, groups in e["by"].items():
            rows += [row(f"{name} {k}", st) for k, st in groups.items()]
        parts += [
            "",
            f"True energy, {e['column']} [{e['unit']}] (std with ddof=0; q25-q75 = IQR)",
            table(head, rows),
        ]
    st = s["storage"]
    rows = [
        ["input HDF5 (disk)", human_bytes(st["input_bytes"]), human_bytes(_per(st["input_bytes"], n))],
        ["nudask Parquet (disk)", human_bytes(st["parquet_bytes"]), human_bytes(st["parquet_per_event"])],
        [
            f"8-bit PNG (disk, est. from {st['png_sample_events']} events)",
            human_bytes(st["png_bytes"]),
            human_bytes(st["png_per_event"]),
        ],
        ["sparse COO (memory, est.)", human_bytes(st["coo_bytes"]), human_bytes(st["coo_per_event"])],
        ["dense float32 (memory)", human_bytes(st["dense_bytes"]), human_bytes(st["dense_per_event"])],
    ]
    ratios = [
        ["dense / Parquet", _num(st["dense_over_parquet"], ".1f")],
        ["dense / PNG", _num(st["dense_over_png"], ".1f")],
        ["PNG / Parquet", _num(st["png_over_parquet"], ".2f")],
        ["dense / COO", _num(st["dense_over_coo"], ".1f")],
    ]
    parts += [
        "",
        "Storage",
        table(["representation", "total", "per event"], rows),
        "",
        table(["ratio", "x"], ratios),
    ]
    return "\n".join(parts) + "\n"


def _per(total: float, n: int) -> float | None:
    return total / n if n else None


def plot_summary(ds, summary: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``storage.png`` and (with an energy column) ``energy.png`` to ``out_dir``.

    Uses matplotlib's object API with the Agg canvas, so the caller's pyplot
    backend is left alone. Returns the paths written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = os.path.basename(os.path.normpath(summary["path"]))
    st, paths = summary["storage"], []

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bars = [
        ("8-bit PNG\n(disk)", st["png_bytes"], "tab:orange"),
        ("nudask Parquet\n(disk)", st["parquet_bytes"], "tab:blue"),
        ("sparse COO\n(memory)", st["coo_bytes"], "tab:green"),
        ("dense float32\n(memory)", st["dense_bytes"], "tab:red"),
    ]
    heights = [max(b[1], 1) for b in bars]  # log scale: keep empty datasets drawable
    drawn = ax.bar([b[0] for b in bars], heights, color=[b[2] for b in bars])
    ax.bar_label(
        drawn,
        [f"{human_bytes(b[1])}\n({human_bytes(_per(b[1], summary['events']))}/event)" for b in bars],
        padding=3,
        fontsize=9,
    )
    ax.set_yscale("log")
    # the smallest bar a decade tall; room for the labels above the tallest one
    ax.set_ylim(min(heights) / 10, max(heights) * 12)
    ax.set_ylabel("bytes")
    ax.set_title(
        f"{name}: {summary['events']} events on disk and in memory\n"
        f"(PNG and COO estimated from {st['png_sample_events']} events)"
    )
    ax.grid(axis="y", which="major", alpha=0.3)
    paths.append(out / "storage.png")
    fig.savefig(paths[-1], dpi=120)

    if "energy" in summary:
        column = summary["energy"]["column"]
        meta = ds.metadata
        energy = meta[column].to_numpy(np.float64)
        labels = headline_classes(class_columns(meta, ds.roles))
        unit = summary["energy"]["unit"]
        groups = (
            {"all": energy}
            if labels is None
            else {k: energy[(labels == k).to_numpy()] for k in _counts(labels)}
        )
        finite = energy[np.isfinite(energy)]
        n_bins = int(np.clip(2 * np.sqrt(finite.size), 10, 50))  # ~2 sqrt(n): smooth, not coarse
        bins = np.linspace(0, max(float(finite.max()) if finite.size else 1.0, 1e-6) * 1.02, n_bins + 1)
        fig = Figure(figsize=(8, 5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for k, v in groups.items():
            v = v[np.isfinite(v)]
            ax.hist(
                v,
                bins=list(bins),
                histtype="step",
                linewidth=1.8,
                label=f"{k} ({v.size}, mean {v.mean():.2f} {unit})" if v.size else f"{k} (0)",
            )
        ax.set_xlabel(f"true energy ({column}) [{unit}]")
        ax.set_ylabel(f"events / {bins[1] - bins[0]:.2f} {unit}")
        ax.set_title(f"{name}: neutrino energy per class ({summary['events']} events)")
        ax.legend(title="class (events)", fontsize=9)
        paths.append(out / "energy.png")
        fig.savefig(paths[-1], dpi=120)
    return paths
