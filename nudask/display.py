"""Event displays: every view of one event, drawn the way the OpenSamples notebooks do.

Wire-plane views (axes ``("wire", "time")``) are drawn transposed, time up
and wire across, on a colour scale ``0 .. vmax`` (100 at the default
rendering); a 6-tick bin (0.33 cm of drift) is about one wire pitch
(0.3 cm), so equal pixel aspect is close to true geometry. Other views are
drawn as stored, rows down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .events import ViewSpec
from .roles import Roles

WIRE_TIME = ("wire", "time")


def is_wire_time(spec: ViewSpec) -> bool:
    return tuple(spec.axes) == WIRE_TIME


def display_array(image: np.ndarray, spec: ViewSpec) -> np.ndarray:
    """The image as displayed, row 0 first: wire/time views transposed to (time, wire).

    >>> v = ViewSpec("u", ("wire", "time"), (3, 2))
    >>> display_array(np.arange(6).reshape(3, 2), v).shape
    (2, 3)
    """
    return image.T if is_wire_time(spec) else image


def colour_max(image: np.ndarray, spec: ViewSpec) -> float:
    """Top of the colour scale: the view's ``vmax``, else the image maximum (1 if blank)."""
    if spec.vmax is not None:
        return float(spec.vmax)
    top = float(image.max()) if image.size else 0.0
    return top if top > 0 else 1.0


def to_uint8(image: np.ndarray, spec: ViewSpec) -> np.ndarray:
    """8-bit greyscale as the notebooks save PNGs: ``0 .. vmax`` -> ``0 .. 255``, clipped.

    Integer images already within 0..255 (8-bit pixel maps) are kept as they are.

    >>> to_uint8(np.array([0.0, 50.0, 200.0]), ViewSpec("u", ("wire",), (3,), vmax=100.0))
    array([  0, 127, 255], dtype=uint8)
    """
    image = np.asarray(image)
    if (
        spec.vmax is None
        and image.size
        and np.allclose(image, np.round(image))
        and image.min() >= 0
        and image.max() <= 255
    ):
        return image.astype(np.uint8)
    scaled = image.astype(np.float32) * np.float32(255 / colour_max(image, spec))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def max_pool(image: np.ndarray, step: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Block maximum over ``step`` pixels, so thin tracks survive downscaling to the screen.

    >>> max_pool(np.arange(6.0).reshape(2, 3), (1, 2))[0].tolist()
    [[1.0, 2.0], [4.0, 5.0]]
    """
    sy, sx = step
    if (sy, sx) == (1, 1):
        return image, step
    ny, nx = -(-image.shape[0] // sy), -(-image.shape[1] // sx)
    padded = np.zeros((ny * sy, nx * sx), image.dtype)
    padded[: image.shape[0], : image.shape[1]] = image
    return padded.reshape(ny, sy, nx, sx).max(axis=(1, 3)), step


def title_of(row: Any, roles: Roles) -> str:
    """Title text from a metadata row: event identity, then the truth the reader's roles name."""
    ident = f"run {row['run']}  subrun {row['subrun']}  event {row['event']}"
    truth = []
    for field in roles.title:
        column, fmt = field.column, field.template
        if column in row.index and row[column] is not None:
            value = row[column]
            try:
                truth.append(fmt.format(int(value) if "d}" in fmt else value))
            except (TypeError, ValueError):
                truth.append(f"{column} {value}")
    source = (
        f"({os.path.basename(str(row['source_file']))}, row {row['event_index']})"
        if "source_file" in row.index
        else ""
    )
    return "\n".join(p for p in (f"{ident}    {source}".strip(), "   ".join(truth)) if p)


def planar_images(ds, i: int) -> dict[str, np.ndarray]:
    """Event ``i``'s images as 2-D arrays: views of more axes summed onto their first two.

    Voxel views are projected from their entries, never built dense in 3-D.
    """
    if all(len(v.shape) == 2 for v in ds.views.values()):
        return ds.image(i)
    out = {}
    for name, coo in ds.coo(i).items():
        plane = np.zeros(coo.shape[:2], np.float32)
        np.add.at(plane, (coo.index[0].astype(np.int64), coo.index[1].astype(np.int64)), coo.values)
        out[name] = plane
    return out


def show_event(ds, i: int, out_path: str | os.PathLike, *, cmap: str = "viridis", dpi: int = 120) -> Path:
    """Write a PNG event display of every view of event ``i`` of ``ds``.

    Parameters
    ----------
    ds : nudask.Dataset
        An opened dataset.
    i : int
        Event number (row of ``ds.metadata``; negative counts from the end).
    out_path : str or PathLike
        PNG file to write (its folder is created).
    cmap : str
        Matplotlib colour map.
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = planar_images(ds, i)  # raises IndexError for a bad i before anything is drawn
    row = ds.metadata.iloc[i]
    views = [(name, ds.views[name], display_array(img, ds.views[name])) for name, img in images.items()]
    wire_time = all(is_wire_time(spec) for _, spec, _ in views)
    # height / width of the tallest over the widest: one pixel scale for all panels
    ratio = max(a.shape[0] for _, _, a in views) / max(max(a.shape[1] for _, _, a in views), 1)
    if wire_time:  # wide (time x wire) planes stacked, wire 0 aligned on the left
        rows, cols = len(views), 1
        width = min(11.0, 4.5 / ratio)
        # rows a little too short, so every panel is height-bound: same scale, y widest
        size = (width + 1.8, rows * (0.95 * width * ratio + 0.75) + 0.9)
    else:  # small maps side by side
        rows, cols = 1, len(views)
        width = min(4.5, 6.0 / ratio)
        size = (cols * (width + 1.3), width * ratio + 1.7)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    shared = wire_time and all(spec.vmax is not None for _, spec, _ in views)  # one 0..vmax scale
    # pool all panels alike, about one block per screen pixel of the widest panel
    tallest, widest = (max(a.shape[k] for _, _, a in views) for k in (0, 1))
    step0 = (-(-tallest // int(width * ratio * dpi)), -(-widest // int(width * dpi)))
    for ax, (name, spec, arr) in zip(axes, views):
        top = colour_max(arr, spec)
        pooled, step = max_pool(arr, step0)
        h, w = pooled.shape[0] * step[0], pooled.shape[1] * step[1]
        upper = not is_wire_time(spec)
        im = ax.imshow(
            pooled,
            cmap=cmap,
            vmin=0,
            vmax=top,
            interpolation="nearest",
            origin="upper" if upper else "lower",
            aspect="equal",
            extent=(-0.5, w - 0.5, h - 0.5, -0.5) if upper else (-0.5, w - 0.5, -0.5, h - 0.5),
        )
        ax.set_xlim(-0.5, arr.shape[1] - 0.5)
        ax.set_ylim((arr.shape[0] - 0.5, -0.5) if upper else (-0.5, arr.shape[0] - 0.5))
        ax.set_anchor("W" if wire_time else "C")
        y_axis, x_axis = (spec.axes[1], spec.axes[0]) if is_wire_time(spec) else spec.axes[:2]
        ax.set_xlabel(x_axis)
        ax.set_ylabel(f"{y_axis} bin" if y_axis == "time" else y_axis)
        pooled_note = f", max over {step[1]}x{step[0]} px" if step != (1, 1) else ""
        ax.set_title(
            f"view {name}: {arr.shape[1]} x {arr.shape[0]}, "
            f"{int(np.count_nonzero(arr))} non-zero{pooled_note}",
            fontsize=10,
            loc="left",
        )
        if not shared:
            fig.colorbar(im, ax=ax, label="value", shrink=0.8, panchor=False)
    if shared:
        fig.colorbar(
            im, ax=list(axes), label="charge (ADC sum per bin)", shrink=0.6, aspect=30, panchor=False
        )
    fig.suptitle(title_of(row, ds.roles), fontsize=11)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out
