"""Opening CONNIE FITS files with astropy: what kind a file is, its headers, its amplifiers."""

from __future__ import annotations

import os
import re
import warnings
import zlib
from dataclasses import dataclass

import numpy as np

from ...errors import InputError

FITS_MAGIC = b"SIMPLE  ="
ROOT_MAGIC = b"root"
KINDS = ("raw", "calibrated", "crop", "catalog")


def header_value(header, key: str, default=None, *, path: str = "", cast=int):
    """A header value, parsed: real files write numbers as strings (``NSAMP = '1'``)."""
    if key not in header:
        if default is None:
            raise InputError(path, f"header key {key} is missing", "is it a CONNIE Skipper image?")
        return default
    value = header[key]
    try:
        return cast(float(value)) if cast is int else cast(value)
    except (TypeError, ValueError):
        raise InputError(path, f"header key {key} is {value!r}, not a number") from None


def image_number(header, path: str) -> int:
    """IMGID from the header; else the last number in the file name; else a hash of the name."""
    if "IMGID" in header:
        return header_value(header, "IMGID", path=path)
    digits = re.findall(r"\d+", os.path.basename(path).split(".")[0])
    return int(digits[-1]) if digits else zlib.crc32(os.path.basename(path).encode()) & 0x7FFFFFFF


def check_file(path: str) -> bytes:
    """The first bytes of ``path``; InputError for a missing or empty file."""
    if not os.path.exists(path):
        raise InputError(path, "no such file", "check the path")
    if os.path.getsize(path) == 0:
        raise InputError(path, "the file is empty (0 bytes)", "is it an empty or partial copy?")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(FITS_MAGIC) and os.path.getsize(path) % 2880:
        raise InputError(
            path, "the file is truncated (FITS files are whole 2880-byte blocks)", "copy it again"
        )
    return head


def open_fits(path: str):
    """The HDU list of ``path``; a truncated or corrupt file is an InputError (not a warning)."""
    from astropy.io import fits

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
        except (OSError, ValueError, TypeError, IndexError, EOFError) as err:
            raise InputError(
                path, f"cannot be read as FITS ({err})", "the file may be truncated or corrupt"
            ) from None
    for w in caught:
        if "truncated" in str(w.message):
            hdul.close()
            raise InputError(path, "the file is truncated", "copy it again") from None
    return hdul


@dataclass(frozen=True)
class Amplifier:
    """One amplifier's image HDU: its id, sample count and layout."""

    hdu: int
    chid: int
    nsamp: int
    nrow: int
    ncol: int
    prescan: int
    overscan: int | None  # None: the header does not say


def kind_of(path: str) -> str:
    """``raw``, ``calibrated``, ``crop`` (one event) or ``catalog`` (hitSumm ROOT)."""
    head = check_file(path)
    if head.startswith(ROOT_MAGIC):
        return "catalog"
    if not head.startswith(FITS_MAGIC):
        raise InputError(
            path, "neither a FITS nor a ROOT file", "give CONNIE .fits/.fz images or hitSumm .root"
        )
    with open_fits(path) as hdul:
        primary = hdul[0]
        if primary.header.get("NAXIS", 0) == 0:
            if len(hdul) < 2:
                raise InputError(path, "a FITS file with no image", "is it an empty or partial copy?")
            return "raw"
        if primary.header.get("NAXIS") != 2:
            raise InputError(path, f"its primary image is {primary.header.get('NAXIS')}-D, not 2-D")
        return "crop" if ("EVENTID" in primary.header or "LABEL" in primary.header) else "calibrated"


def amplifiers(hdul, path: str) -> list[Amplifier]:
    """The image HDUs of a raw file, checked against their headers."""
    out = []
    for i, hdu in enumerate(hdul[1:], 1):
        h = hdu.header
        if h.get("NAXIS", 0) != 2:
            continue
        shape = (h["NAXIS2"], h["NAXIS1"])
        nsamp = header_value(h, "NSAMP", 1, path=path)
        nrow = header_value(h, "NROW", shape[0], path=path)
        ncol = header_value(h, "NCOL", shape[1] // max(nsamp, 1), path=path)
        if nsamp < 1 or shape != (nrow, ncol * nsamp):
            raise InputError(
                path, f"HDU {i} is {shape[0]} x {shape[1]} but its header says NROW {nrow}, NCOL {ncol}, "
                f"NSAMP {nsamp}", "the headers do not match the data; is the file truncated?",
            )  # fmt: skip
        over = header_value(h, "CCDNOVER", -1, path=path)
        out.append(
            Amplifier(i, header_value(h, "CHID", i, path=path), nsamp, nrow, ncol,
                      header_value(h, "CCDNPRES", 0, path=path), None if over < 0 else over)
        )  # fmt: skip
    if not out:
        raise InputError(path, "no 2-D image HDU (amplifier)", "is it a CONNIE raw image?")
    stated = hdul[0].header.get("NAMPS")  # where the primary header states the amplifier count
    if stated is not None and int(float(stated)) != len(out):
        raise InputError(path, f"{len(out)} amplifier HDUs, NAMPS says {stated}", "the file may be truncated")
    return out


def averaged(data: np.ndarray, nsamp: int) -> np.ndarray:
    """Pixels from interleaved Skipper samples: the mean of ``reshape(rows, -1, NSAMP)``.

    With one sample the int32 ADU come back as they are.

    >>> averaged(np.array([[1, 3, 10, 20]], np.int32), 2)
    array([[ 2., 15.]])
    >>> averaged(np.array([[1, 3]], np.int32), 1).dtype
    dtype('int32')
    """
    if nsamp == 1:
        return np.ascontiguousarray(data, dtype=np.int32)
    rows = data.shape[0]
    return data.reshape(rows, -1, nsamp).mean(axis=2, dtype=np.float64)


def read_amplifier(hdul, amp: Amplifier, path: str) -> np.ndarray:
    try:
        data = hdul[amp.hdu].data
    except (OSError, ValueError, TypeError, IndexError, EOFError, KeyError) as err:
        raise InputError(
            path, f"cannot read HDU {amp.hdu} ({err})", "the file may be truncated or corrupt"
        ) from None
    if data is None or data.shape != (amp.nrow, amp.ncol * amp.nsamp):
        raise InputError(path, f"HDU {amp.hdu} holds no complete image", "the file may be truncated")
    return averaged(data, amp.nsamp)
