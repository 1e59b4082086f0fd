"""Per-voxel figures of the model and the baseline on a labelled dataset's validation images.

Michel F1, precision and recall (voxels pooled), the 5-class confusion of the model
(rows true, columns predicted; the baseline only says Michel or not), and the Michel F1 in
bins of the image's true Michel energy.
"""

from __future__ import annotations

import time

import numpy as np

from . import CLASSES, MICHEL
from .baseline import Baseline

ENERGY_BINS = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 1e9)


def _f1(tp, pred, true):
    return {
        "f1": 2 * tp / (pred + true) if pred + true else 1.0,
        "precision": tp / pred if pred else float("nan"),
        "recall": tp / true if true else float("nan"),
        "tp": int(tp),
        "predicted": int(pred),
        "true": int(true),
    }


def evaluate(ds, rows, predictors: dict) -> dict:
    base = Baseline()
    k = len(CLASSES)
    out = {}
    meta = ds.metadata
    for name, predictor in predictors.items():
        counts = np.zeros(3)
        confusion = np.zeros((k, k), np.int64)
        by_energy = np.zeros((len(ENERGY_BINS) - 1, 3))
        t0 = time.perf_counter()
        for i in rows:
            vox = ds.coo(int(i))["voxels"]
            xyz = np.stack(vox.index, axis=1).astype(np.float32)
            energy, label = vox.channels["energy"], vox.channels["label"]
            if predictor is None:
                michel = base.predict(xyz, energy)
            else:
                pred = predictor.classes(xyz, energy)
                np.add.at(confusion, (label, np.clip(pred, 0, k - 1)), 1)
                michel = pred == MICHEL
            c = np.array([np.sum(michel & (label == MICHEL)), michel.sum(), np.sum(label == MICHEL)])
            counts += c
            b = int(np.searchsorted(ENERGY_BINS, float(meta["michel_energy"][int(i)]), side="right")) - 1
            by_energy[min(max(b, 0), len(by_energy) - 1)] += c
        result = _f1(*counts)
        result["seconds_per_image"] = (time.perf_counter() - t0) / max(len(rows), 1)
        result["by_michel_energy"] = [
            {"from_mev": ENERGY_BINS[j], "to_mev": ENERGY_BINS[j + 1], **_f1(*by_energy[j])}
            for j in range(len(by_energy))
            if by_energy[j, 2] or by_energy[j, 1]
        ]
        if predictor is not None:
            result["confusion"] = confusion.tolist()
        out[name] = result
    out["images"] = len(rows)
    return out


def format_evaluation(result: dict) -> str:
    lines = [f"Michel voxels on {result['images']} validation images", ""]
    lines.append("approach  F1      precision  recall  (tp / predicted / true)  s per image")
    for name in ("model", "baseline"):
        r = result[name]
        lines.append(
            f"{name:8s}  {r['f1']:.4f}  {r['precision']:.4f}     {r['recall']:.4f}  "
            f"({r['tp']} / {r['predicted']} / {r['true']})  {r['seconds_per_image']:.3f}"
        )
    lines += ["", "F1 by the image's true Michel energy (MeV)", "bin        model   baseline"]
    base = {(b["from_mev"], b["to_mev"]): b for b in result["baseline"]["by_michel_energy"]}
    for b in result["model"]["by_michel_energy"]:
        other = base.get((b["from_mev"], b["to_mev"]), {"f1": float("nan")})
        hi = "inf" if b["to_mev"] > 1e6 else f"{b['to_mev']:.0f}"
        lines.append(f"{b['from_mev']:3.0f}-{hi:>4s}   {b['f1']:.4f}  {other['f1']:.4f}")
    lines += ["", "model confusion (rows true, columns predicted): " + ", ".join(CLASSES)]
    for name, row in zip(CLASSES, result["model"]["confusion"]):
        lines.append(f"{name:8s} " + " ".join(f"{v:8d}" for v in row))
    return "\n".join(lines)
