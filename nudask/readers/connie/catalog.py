"""CONNIE ``hitSumm`` ROOT catalogs, read and written with uproot.

One entry per reconstructed event: ``runID``, ``ohdu``, the pixel lists
``xPix``, ``yPix`` (absolute active-area columns and rows) and ``ePix``
(energy, keV by default), their count ``nSavedPix``, ``E0`` (keV), the
barycentre ``xBary0``/``yBary0``, the box ``xMin..yMax`` and ``flag``. A
``label`` branch (class code), where present, is truth (the simulator writes one).
"""

from __future__ import annotations

import numpy as np

TREE = "hitSumm"
SCALARS = ("runID", "ohdu", "E0", "nSavedPix", "xBary0", "yBary0", "xMin", "xMax", "yMin", "yMax", "flag")
PIXELS = ("xPix", "yPix", "ePix")
REQUIRED = ("runID", "ohdu", *PIXELS)


def write_hitsumm(path: str, events: list[dict]) -> str:
    """Write ``events`` (dicts of runID, ohdu, xPix, yPix, ePix and maybe label) as a hitSumm tree."""
    import awkward as ak
    import uproot

    def column(name, dtype):
        return np.array([e[name] for e in events], dtype)

    xs = [np.asarray(e["xPix"], np.int32) for e in events]
    ys = [np.asarray(e["yPix"], np.int32) for e in events]
    es = [np.asarray(e["ePix"], np.float32) for e in events]
    n = np.array([len(x) for x in xs], np.int32)
    e0 = np.array([e.sum() for e in es], np.float32)
    w = [np.maximum(e, 0) for e in es]
    bary = lambda v: np.array([(a * b).sum() / max(b.sum(), 1e-12) for a, b in zip(v, w)], np.float32)  # noqa: E731
    data = {
        "runID": column("runID", np.int32), "ohdu": column("ohdu", np.int32), "E0": e0,
        "xBary0": bary(xs), "yBary0": bary(ys),
        "xMin": np.array([x.min() for x in xs], np.int32), "xMax": np.array([x.max() for x in xs], np.int32),
        "yMin": np.array([y.min() for y in ys], np.int32), "yMax": np.array([y.max() for y in ys], np.int32),
        "flag": np.zeros(len(events), np.int32),
        "xPix": ak.Array(xs), "yPix": ak.Array(ys), "ePix": ak.Array(es),
    }  # fmt: skip
    if events and "label" in events[0]:
        data["label"] = column("label", np.int32)
    with uproot.recreate(path) as f:
        types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
        tree = f.mktree(TREE, types, counter_name=lambda _: "nSavedPix")
        tree.extend(data)
    assert np.all(n >= 0)
    return path


def open_tree(path: str):
    """The hitSumm tree of ``path``; ValueError/OSError when it is not there."""
    import uproot

    f = uproot.open(path)
    if TREE not in f:
        raise KeyError(
            f"no '{TREE}' tree (it holds {', '.join(k.split(';')[0] for k in f.keys()) or 'nothing'})"
        )
    return f[TREE]


def read_entries(tree, start: int, stop: int) -> dict[str, np.ndarray]:
    """Entries ``[start, stop)``: scalar branches as arrays, pixel branches as object arrays."""
    names = [b for b in (*SCALARS, *PIXELS, "label") if b in tree.keys()]
    return tree.arrays(names, entry_start=start, entry_stop=stop, library="np")
