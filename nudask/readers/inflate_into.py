"""Inflate zlib streams into a buffer the caller owns, at libdeflate speed.

``deflate.zlib_decompress`` returns a new bytes object per call: for a 25 MB
HDF5 chunk that is a fresh allocation whose pages are faulted in again every
time (glibc hands them back to the system on free unless its thresholds are
raised). Here libdeflate's own ``libdeflate_zlib_decompress`` is called
through ctypes on a buffer that is reused chunk after chunk. The library is
the one the ``deflate`` wheel already ships (its extension module exports the
libdeflate symbols), else a system ``libdeflate``; :data:`LIBDEFLATE` is
``None`` when neither is there and callers fall back to ``deflate``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import weakref

import deflate
import numpy as np

_RESULTS = {1: "bad data", 2: "short output", 3: "output larger than the chunk"}


def _load() -> tuple[ctypes.CDLL, str] | None:
    """libdeflate with the zlib entry points, and where it was found."""
    from deflate import _deflate  # type: ignore[attr-defined]

    for path in (_deflate.__file__, ctypes.util.find_library("deflate")):
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.libdeflate_zlib_decompress  # noqa: B018  (raises AttributeError if not exported)
        except (OSError, AttributeError):
            continue
        lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
        lib.libdeflate_alloc_decompressor.argtypes = []
        lib.libdeflate_free_decompressor.restype = None
        lib.libdeflate_free_decompressor.argtypes = [ctypes.c_void_p]
        lib.libdeflate_zlib_decompress.restype = ctypes.c_int
        lib.libdeflate_zlib_decompress.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_size_t),
        ]
        return lib, path
    return None


_FOUND = _load()
LIBDEFLATE: str | None = None if _FOUND is None else _FOUND[1]  # the shared library in use


class ZlibInflater:
    """One libdeflate decompressor (not thread-safe: one per reading thread)."""

    def __init__(self) -> None:
        if _FOUND is None:
            raise RuntimeError("no libdeflate shared library: install the 'deflate' wheel")
        self._lib = _FOUND[0]
        self._handle = self._lib.libdeflate_alloc_decompressor()
        if not self._handle:
            raise MemoryError("libdeflate could not allocate a decompressor")
        self._actual = ctypes.c_size_t()
        weakref.finalize(self, self._lib.libdeflate_free_decompressor, self._handle)

    def into(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Inflate the zlib stream ``src`` (uint8) to fill ``dst`` exactly (contiguous)."""
        rc = self._lib.libdeflate_zlib_decompress(
            self._handle, src.ctypes.data, src.nbytes, dst.ctypes.data, dst.nbytes, ctypes.byref(self._actual)
        )
        if rc != 0:
            raise deflate.DeflateError(f"zlib stream does not inflate: {_RESULTS.get(rc, rc)}")
        if self._actual.value != dst.nbytes:
            raise deflate.DeflateError(
                f"zlib stream inflates to {self._actual.value} bytes, the chunk holds {dst.nbytes}"
            )
