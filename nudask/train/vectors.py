"""Vector targets (``task.target: <vector role>``, e.g. a true direction): unit vectors, angles.

The model ends in a dense layer with one output per component, normalised to a
unit vector, trained with a cosine loss ``1 - cos(pred, true)``.

**Sign (head-tail) ambiguity.** A track's image often shows its axis but not
which end it starts from. With ``task.axial: true`` the target is an *axis*:
the loss is ``1 - |cos|`` and the angle between prediction and truth is folded
into [0, 90] degrees, so a prediction pointing backwards along the right axis
counts as right. With ``task.axial: false`` (the default) the model must learn
the sign too, from whatever the picture holds (a stopping track's charge rises
toward its end), and angles run over [0, 180] degrees. The evaluation always
reports both the signed and the axial angle, and which one the task used.

Reported: the 68 % containment angle (the angle 68 % of the test events are
within), the median, the histogram of angles, and the 68 % angle in bins of
the true energy.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def unit(v: np.ndarray) -> np.ndarray:
    """Rows of ``v`` scaled to unit length; NaN rows where the length is 0 or not finite.

    >>> unit(np.array([[3.0, 0, 4], [0, 0, 0]])).tolist()[0]
    [0.6, 0.0, 0.8]
    """
    v = np.asarray(v, np.float64)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = v / norm
    out[~(np.isfinite(norm[:, 0]) & (norm[:, 0] > 0))] = np.nan
    return out


def angles(true: np.ndarray, pred: np.ndarray, axial: bool = False) -> np.ndarray:
    """Angle in degrees between rows of ``true`` and ``pred``; folded to [0, 90] when ``axial``.

    >>> angles(np.array([[1.0, 0, 0]]), np.array([[-1.0, 0, 0]])).tolist(), angles(
    ...     np.array([[1.0, 0, 0]]), np.array([[-1.0, 0, 0]]), axial=True).tolist()
    ([180.0], [0.0])
    """
    cos = np.sum(unit(true) * unit(pred), axis=1)
    if axial:
        cos = np.abs(cos)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def containment(a: np.ndarray, fraction: float = 0.68) -> float:
    """The angle that ``fraction`` of ``a`` lie within (NaN for none).

    >>> containment(np.arange(101.0), 0.68)
    68.0
    """
    a = a[np.isfinite(a)]
    return float(np.quantile(a, fraction)) if a.size else float("nan")


def metrics(true: np.ndarray, pred: np.ndarray, axial: bool) -> dict:
    signed, folded = angles(true, pred), angles(true, pred, axial=True)
    used = folded if axial else signed
    return {
        "events": int(np.isfinite(used).sum()),
        "sign": "axial (head-tail folded)" if axial else "signed",
        "angle_68": containment(used),
        "angle_median": containment(used, 0.5),
        "angle_68_signed": containment(signed),
        "angle_68_axial": containment(folded),
        "mean_cos": float(np.nanmean(np.cos(np.radians(used)))),
    }


def plot_angles(a: np.ndarray, axial: bool, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = 90.0 if axial else 180.0
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(a[np.isfinite(a)], bins=36, range=(0, top), color="tab:blue")
    c68 = containment(a)
    ax.axvline(c68, color="tab:red", ls="--", label=f"68 % within {c68:.1f} deg")
    ax.set_xlabel("angle between predicted and true direction (deg)" + (" [axial]" if axial else ""))
    ax.set_ylabel("events")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _cosine(y_true, y_pred, axial: bool):
    from keras import ops

    t = y_true / (ops.sqrt(ops.sum(ops.square(y_true), axis=-1, keepdims=True)) + 1e-7)
    p = y_pred / (ops.sqrt(ops.sum(ops.square(y_pred), axis=-1, keepdims=True)) + 1e-7)
    cos = ops.sum(t * p, axis=-1)
    return 1.0 - (ops.abs(cos) if axial else cos)


@keras.saving.register_keras_serializable(package="nudask")
def cosine_loss(y_true, y_pred):
    """``1 - cos(pred, true)``: the signed direction."""
    return _cosine(y_true, y_pred, False)


@keras.saving.register_keras_serializable(package="nudask")
def axial_cosine_loss(y_true, y_pred):
    """``1 - |cos(pred, true)|``: the axis, either sign."""
    return _cosine(y_true, y_pred, True)


def loss(axial: bool):
    """The cosine loss on unit predictions (``1 - |cos|`` for an axis)."""
    return axial_cosine_loss if axial else cosine_loss
