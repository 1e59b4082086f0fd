"""CONNIE Skipper-CCD images (formats.md section 4), read with astropy and uproot.

Inputs, told apart by their content:

=============  ===================================================================
raw            fpack ``.fz``: empty primary HDU, one int32 image HDU per amplifier
               (``CHID``), samples interleaved along columns (``NSAMP``)
calibrated     one 2-D float primary HDU in electrons (``OHDU`` names the amplifier)
crop           one cropped event (2-D float primary; ``EVENTID``/``LABEL`` keys)
catalog        a ``hitSumm`` ROOT tree: one entry per event, pixel lists
=============  ===================================================================

``mode=image`` (default) gives one row per image: a raw image has one dense view
per amplifier, ``amp{CHID}`` (int32 ADU kept as they are with NSAMP = 1, else
the float64 mean of the samples; electrons with ``calibrate=true``) and its
header fields as metadata; a calibrated image one view ``image``. ``mode=events``
extracts events from raw (calibrated on the way) and calibrated images with the
CONNIE recipe (:mod:`.extract`); crops and catalog entries are read in this mode
(one row each). Event rows have one dense view ``event`` (the padded crop, at its own
size, electrons), the features of :data:`.extract.FEATURES` and ``label``
(class code in :data:`.extract.CLASSES`, -1 unknown; from a crop's ``LABEL``,
a catalog's ``label`` branch or a raw image's ``.truth.csv`` beside it).

Event ids: raw image ``(RUNID, IMGID, 0)``; calibrated ``(RUNID, IMGID, OHDU)``;
extracted ``(RUNID, IMGID, OHDU * 100000 + k)``; crop ``(RUNID, IMGID, EVENTID)``;
catalog ``(runID, ohdu, entry)``.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError, InputError
from ...events import Chunk, Event, EventId, ViewSpec
from ...roles import Label, Quantity, Roles, Title
from ..base import FieldSpec, Reader
from .calibrate import BASELINES, CalibrationError, to_electrons
from .extract import CLASSES, EV_PER_ELECTRON, FEATURES, Recipe, extract_events, single_event_features
from .fitsfiles import amplifiers, header_value, image_number, kind_of, open_fits, read_amplifier
from .simulate import OPTIONS as SIMULATE_OPTIONS

MODES = ("image", "events")
EVENT_VIEW = ViewSpec("event", ("y", "x"), (1, 1), "float32", kind="dense")
EVENT_FIELDS: dict[str, FieldSpec] = {
    **{k: (t, ()) for k, t in FEATURES.items()},
    "label": ("<i4", ()),
    "ohdu": ("<i4", ()),
    "x0": ("<i4", ()),  # the crop's origin in the amplifier's active area
    "y0": ("<i4", ()),
}
HEADER_FIELDS = {"nsamp": "<i4", "nrow": "<i4", "ncol": "<i4", "ccdnpres": "<i4", "exposure": "<f4"}
EPIX_UNITS = {"keV": 1000.0 / EV_PER_ELECTRON, "eV": 1.0 / EV_PER_ELECTRON, "electron": 1.0}
_CACHE: dict[tuple, list] = {}  # extraction results of the last few images (planning, then reading)


class ConnieReader(Reader):
    name = "connie"
    suffixes = (".fz", ".fits", ".fit", ".root")
    description = "CONNIE Skipper-CCD FITS (raw fpack, calibrated, cropped events) and hitSumm ROOT"
    OPTIONS: ClassVar[dict[str, str]] = {
        "mode": "image: one row per file; events: extract events from images (CONNIE recipe)",
        "calibrate": "image mode: raw images in electrons instead of ADU",
        "baseline": "baseline per row from the overscan, the prescan or the median of the row",
        "gain": "ADU per electron: null measures it per amplifier; a number, or a list per amplifier",
        "overscan": "overscan columns; null: the header's CCDNOVER (else 0)",
        "frame": "extraction: pixels masked at the image's edges",
        "clip": "extraction: electrons below this are set to 0",
        "blur": "extraction: 3 x 3 Gaussian blur before the threshold",
        "threshold": "extraction: electrons (after the blur) an event pixel needs (10 eV)",
        "open": "extraction: iterations of the 3 x 3 opening (0: none)",
        "dilate": "extraction: iterations of the dilation",
        "erode": "extraction: iterations of the erosion",
        "pad": "extraction: pixels around each event's box (also around a catalog event)",
        "min_pixels": "extraction: smallest event kept, pixels",
        "epix_unit": "catalogs: unit of ePix (keV, eV or electron)",
        "truth": "raw images: labels from the .truth.csv beside them (auto) or none",
    }
    simulate_options: ClassVar[dict[str, str]] = SIMULATE_OPTIONS

    def __init__(
        self,
        *,
        mode: str = "image",
        calibrate: bool = False,
        baseline: str = "overscan",
        gain: Any = None,
        overscan: int | None = None,
        frame: int = 5,
        clip: float = 0.64,
        blur: bool = True,
        threshold: float = round(10 / EV_PER_ELECTRON, 4),
        open: int = 1,
        dilate: int = 1,
        erode: int = 1,
        pad: int = 30,
        min_pixels: int = 1,
        epix_unit: str = "keV",
        truth: str = "auto",
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"reader 'connie': mode must be one of {', '.join(MODES)}, not {mode!r}")
        if baseline not in BASELINES:
            raise ConfigError(
                f"reader 'connie': baseline must be one of {', '.join(BASELINES)}, not {baseline!r}"
            )
        if epix_unit not in EPIX_UNITS:
            raise ConfigError(f"reader 'connie': epix_unit must be one of {', '.join(EPIX_UNITS)}")
        if gain is not None and not isinstance(gain, (int, float, list, tuple)):
            raise ConfigError(f"reader 'connie': gain must be a number or a list of numbers, not {gain!r}")
        self.mode, self.calibrate, self.baseline, self.gain = mode, bool(calibrate), baseline, gain
        self.overscan, self.epix_unit, self.truth = overscan, epix_unit, truth
        self.recipe = Recipe(
            frame, float(clip), bool(blur), float(threshold), open, dilate, erode, pad, min_pixels
        )

    def options(self) -> dict[str, Any]:
        return {"mode": self.mode, "calibrate": self.calibrate, "baseline": self.baseline, "gain": self.gain,
                "overscan": self.overscan, **self.recipe.options(), "epix_unit": self.epix_unit,
                "truth": self.truth}  # fmt: skip

    @classmethod
    def simulate(cls, out: str, *, files: int, events: int, seed: int, **options: Any) -> list[str]:
        from .simulate import simulate

        return simulate(out, files=files, events=events, seed=seed, **options)

    @classmethod
    def guess_can_open(cls, path) -> bool:
        return os.fspath(path).endswith(cls.suffixes)

    def roles(self) -> Roles:
        if self.mode == "image":
            return Roles(
                title=(Title("nsamp", "NSAMP {:d}"), Title("exposure", "{:.0f} s")),
                units={"*": "e-" if self.calibrate else "ADU"},
            )
        return Roles(
            energy=Quantity("energy", "eV"),
            labels={"particle": Label(CLASSES, column="label")},
            title=(Title("label", "class {:d}"), Title("energy", "{:.0f} eV"), Title("n_pixels", "{:d} px")),
            units={"event": "e-"},
        )

    # -- what a file holds ---------------------------------------------------------
    def _rows_are_events(self, kind: str, path: str = "") -> bool:
        if self.mode == "image" and kind in ("crop", "catalog"):
            what = "a cropped event" if kind == "crop" else "a hitSumm catalog"
            raise InputError(path, f"{what} holds events, not an image", "read it with -O mode=events")
        return self.mode == "events"

    def views(self, path: str) -> dict[str, ViewSpec]:
        kind = kind_of(path)
        if self._rows_are_events(kind, path):
            shapes = [ev.images["event"].shape for ev in self._events(path, kind)] or [(1, 1)]
            return {
                "event": ViewSpec("event", ("y", "x"), tuple(np.max(shapes, axis=0)), "float32", kind="dense")
            }
        if kind == "calibrated":
            with open_fits(path) as hdul:
                return {
                    "image": ViewSpec("image", ("row", "col"), hdul[0].data.shape, "float32", kind="dense")
                }
        with open_fits(path) as hdul:
            amps = amplifiers(hdul, path)
        out = {}
        for a in amps:
            shape = (a.nrow, a.ncol - a.prescan - self._overscan(a)) if self.calibrate else (a.nrow, a.ncol)
            dtype = "float32" if self.calibrate else ("int32" if a.nsamp == 1 else "float64")
            out[f"amp{a.chid}"] = ViewSpec(f"amp{a.chid}", ("row", "col"), shape, dtype, kind="dense")
        return out

    def metadata_fields(self, path: str) -> dict[str, FieldSpec]:
        kind = kind_of(path)
        if self._rows_are_events(kind, path):
            return dict(EVENT_FIELDS)
        if kind == "calibrated":
            return {"ohdu": ("<i4", ())}
        with open_fits(path) as hdul:
            n = len(amplifiers(hdul, path))
        fields: dict[str, FieldSpec] = {k: (t, ()) for k, t in HEADER_FIELDS.items()}
        fields["chid"] = ("<i4", (n,))
        if self.calibrate:
            fields.update(gain=("<f4", (n,)), noise=("<f4", (n,)))
        return fields

    def event_weights(self, path: str) -> np.ndarray:
        kind = kind_of(path)
        if kind == "catalog":
            n = self._tree(path).num_entries
            if n == 0:
                raise InputError(path, "the catalog holds no events")
            return np.ones(n)
        if self._rows_are_events(kind, path) and kind != "crop":
            n = len(self._events(path, kind))
            if n == 0:
                raise InputError(
                    path, "no events above the threshold", "lower -O threshold=... if that is wrong"
                )
            return np.ones(n)
        with open_fits(path) as hdul:
            if kind == "raw":
                amplifiers(hdul, path)
        return np.ones(1)

    def read(self, chunk: Chunk) -> Iterator[Event]:
        path = chunk.path
        kind = kind_of(path)
        if self._rows_are_events(kind, path):
            if kind == "catalog":
                yield from self._catalog_events(path, chunk.start, chunk.stop)
                return
            found = self._events(path, kind)
            for k in range(chunk.start, chunk.stop):
                yield found[k]
            return
        yield self._image_row(path, kind)

    # -- images --------------------------------------------------------------------
    def _overscan(self, amp) -> int:
        if self.overscan is not None:
            return int(self.overscan)
        return amp.overscan or 0

    def _gain(self, k: int, path: str) -> float | None:
        if self.gain is None or isinstance(self.gain, (int, float)):
            return None if self.gain is None else float(self.gain)
        if k >= len(self.gain):
            raise InputError(
                path, f"has more amplifiers than the {len(self.gain)} gains given", "give one per amplifier"
            )
        return float(self.gain[k])

    def _calibrated_amps(self, path: str, *, calibrate: bool):
        """``(header, [(amp, pixels, gain, noise)])`` of a raw image."""
        with open_fits(path) as hdul:
            amps = amplifiers(hdul, path)
            header = hdul[amps[0].hdu].header
            out = []
            for k, a in enumerate(amps):
                pixels = read_amplifier(hdul, a, path)
                gain = noise = np.nan
                if calibrate:
                    try:
                        pixels, gain, noise = to_electrons(
                            pixels, baseline_method=self.baseline, prescan=a.prescan,
                            overscan=self._overscan(a), gain=self._gain(k, path),
                        )  # fmt: skip
                    except CalibrationError as err:
                        raise InputError(
                            path, f"amplifier CHID {a.chid}: {err}", "give -O gain=ADU_PER_ELECTRON"
                        ) from None
                out.append((a, pixels, gain, noise))
            header = header.copy()
        return header, out

    def _image_row(self, path: str, kind: str) -> Event:
        if kind == "calibrated":
            with open_fits(path) as hdul:
                h, data = hdul[0].header, np.asarray(hdul[0].data, np.float32)
            run, img = header_value(h, "RUNID", 0, path=path), image_number(h, path)
            ohdu = header_value(h, "OHDU", 0, path=path)
            return Event(EventId(run, img, ohdu), 0, {"ohdu": np.int32(ohdu)}, {"image": data})
        header, amps = self._calibrated_amps(path, calibrate=self.calibrate)
        a0 = amps[0][0]
        meta: dict[str, Any] = {
            "nsamp": np.int32(a0.nsamp), "nrow": np.int32(a0.nrow), "ncol": np.int32(a0.ncol),
            "ccdnpres": np.int32(a0.prescan),
            "exposure": np.float32(header_value(header, "EXPOSURE", 0.0, path=path, cast=float)),
            "chid": np.array([a.chid for a, *_ in amps], np.int32),
        }  # fmt: skip
        if self.calibrate:
            meta["gain"] = np.array([g for *_, g, _ in amps], np.float32)
            meta["noise"] = np.array([n for *_, n in amps], np.float32)
        run = header_value(header, "RUNID", 0, path=path)
        images = {f"amp{a.chid}": p for a, p, *_ in amps}
        return Event(EventId(run, image_number(header, path), 0), 0, meta, images)

    # -- events --------------------------------------------------------------------
    def _events(self, path: str, kind: str) -> list[Event]:
        if kind == "crop":
            return [self._crop_event(path)]
        if kind == "catalog":
            return list(self._catalog_events(path, 0, self._tree(path).num_entries))
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size, repr(sorted(self.options().items())))
        if key not in _CACHE:
            if len(_CACHE) >= 8:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = self._extract(path, kind)
        return _CACHE[key]

    def _extract(self, path: str, kind: str) -> list[Event]:
        if kind == "calibrated":
            with open_fits(path) as hdul:
                h, data = hdul[0].header, np.asarray(hdul[0].data, np.float32)
            planes = [(header_value(h, "OHDU", 0, path=path), data)]
            header = h
        else:
            header, amps = self._calibrated_amps(path, calibrate=True)
            planes = [(a.chid, p) for a, p, *_ in amps]
        run, img = header_value(header, "RUNID", 0, path=path), image_number(header, path)
        truth = self._truth(path) if kind == "raw" else None
        out: list[Event] = []
        for ohdu, plane in planes:
            for k, f in enumerate(extract_events(plane, self.recipe)):
                label = _match(truth, ohdu, f.features) if truth is not None else -1
                meta = {**f.features, "label": np.int32(label), "ohdu": np.int32(ohdu),
                        "x0": np.int32(f.box[2]), "y0": np.int32(f.box[0])}  # fmt: skip
                out.append(Event(EventId(run, img, ohdu * 100_000 + k), len(out), meta, {"event": f.image}))
        return out

    def _truth(self, path: str):
        if self.truth != "auto":
            return None
        base = path
        for suffix in (".fz", ".fits", ".fit"):
            base = base.removesuffix(suffix)
        sidecar = base + ".truth.csv"
        if not os.path.exists(sidecar):
            return None
        import pandas as pd

        return pd.read_csv(sidecar)

    def _crop_event(self, path: str) -> Event:
        with open_fits(path) as hdul:
            h, data = hdul[0].header, hdul[0].data
            if data is None or data.ndim != 2:
                raise InputError(path, "no 2-D event image in the primary HDU")
            data = np.asarray(data, np.float32)
        x0, y0 = header_value(h, "X0", 0, path=path), header_value(h, "Y0", 0, path=path)
        label = str(h.get("LABEL", "")).strip()
        eid = header_value(h, "EVENTID", zlib.crc32(os.path.basename(path).encode()) & 0x7FFFFFFF, path=path)
        meta = self._event_meta(data, x0, y0, CLASSES.index(label) if label in CLASSES else -1,
                                header_value(h, "OHDU", 0, path=path))  # fmt: skip
        run = header_value(h, "RUNID", 0, path=path)
        return Event(EventId(run, image_number(h, path), eid), 0, meta, {"event": data})

    def _event_meta(self, image: np.ndarray, x0: int, y0: int, label: int, ohdu: int) -> dict:
        f = single_event_features(image, self.recipe)
        for k in ("x_min", "x_max", "x_bary"):
            f[k] = f[k] + np.asarray(x0, f[k].dtype)
        for k in ("y_min", "y_max", "y_bary"):
            f[k] = f[k] + np.asarray(y0, f[k].dtype)
        return {**f, "label": np.int32(label), "ohdu": np.int32(ohdu), "x0": np.int32(x0), "y0": np.int32(y0)}

    def _tree(self, path: str):
        from .catalog import REQUIRED, open_tree

        kind_of(path)
        try:
            tree = open_tree(path)
        except Exception as err:  # uproot raises many kinds on a bad file
            raise InputError(path, f"not a readable hitSumm catalog ({type(err).__name__}: {err})") from None
        missing = [b for b in REQUIRED if b not in tree.keys()]
        if missing:
            raise InputError(path, f"the hitSumm tree lacks branches {missing}")
        return tree

    def _catalog_events(self, path: str, start: int, stop: int) -> Iterator[Event]:
        from .catalog import read_entries

        try:
            d = read_entries(self._tree(path), start, stop)
        except InputError:
            raise
        except Exception as err:
            raise InputError(path, f"cannot read entries {start}-{stop} ({type(err).__name__}: {err})",
                             "the file may be truncated or corrupt") from None  # fmt: skip
        p, scale = self.recipe.pad, EPIX_UNITS[self.epix_unit]
        for k in range(stop - start):
            xs, ys = d["xPix"][k].astype(np.int64), d["yPix"][k].astype(np.int64)
            es = d["ePix"][k].astype(np.float64) * scale
            if xs.size == 0:
                xs, ys, es = np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1)
            x0, y0 = max(int(xs.min()) - p, 0), max(int(ys.min()) - p, 0)
            image = np.zeros((int(ys.max()) + p + 1 - y0, int(xs.max()) + p + 1 - x0), np.float32)
            np.add.at(image, (ys - y0, xs - x0), es.astype(np.float32))
            label = int(d["label"][k]) if "label" in d else -1
            ohdu = int(d["ohdu"][k])
            meta = self._event_meta(image, x0, y0, label, ohdu)
            yield Event(EventId(int(d["runID"][k]), ohdu, start + k), start + k, meta, {"event": image})


def _match(truth, ohdu: int, feats: dict) -> int:
    """The class of the truth particle whose box overlaps the event's most (-1 if none)."""
    t = truth[truth["ohdu"] == ohdu]
    if t.empty:
        return -1
    dy = np.minimum(t["y1"].to_numpy(), int(feats["y_max"]) + 1) - np.maximum(
        t["y0"].to_numpy(), int(feats["y_min"])
    )
    dx = np.minimum(t["x1"].to_numpy(), int(feats["x_max"]) + 1) - np.maximum(
        t["x0"].to_numpy(), int(feats["x_min"])
    )
    overlap = np.clip(dy, 0, None) * np.clip(dx, 0, None)
    if overlap.max() <= 0:
        return -1
    return CLASSES.index(str(t["label"].to_numpy()[int(np.argmax(overlap))]))


__all__ = ["CLASSES", "FEATURES", "ConnieReader"]
