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


# -- streaming: a chunk inflated piece by piece into one small reused buffer ----------------------
# A 25 MB chunk inflated whole leaves cache before the kernel reads it back; inflated in pieces
# of about 1 MB (an L2 cache), each piece is scanned while still in cache. libdeflate inflates
# whole buffers only; zlib-ng (the ``zlib-ng`` wheel, whose extension exports its native API)
# streams at about libdeflate's speed.
_Z_OK, _Z_STREAM_END = 0, 1


class _ZngStream(ctypes.Structure):
    """zlib-ng's ``zng_stream`` (zlib-ng.h): the native API, stable since zlib-ng 2.0."""

    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint32),
        ("total_in", ctypes.c_size_t),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint32),
        ("total_out", ctypes.c_size_t),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_uint32),
        ("reserved", ctypes.c_ulong),
    ]


def _load_zng() -> tuple[ctypes.CDLL, str] | None:
    try:
        from zlib_ng import zlib_ng  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        lib = ctypes.CDLL(zlib_ng.__file__)
        for name in ("zng_inflateInit", "zng_inflateReset", "zng_inflate", "zng_inflateEnd"):
            fn = getattr(lib, name)
            fn.restype = ctypes.c_int32
            fn.argtypes = [ctypes.POINTER(_ZngStream)] + ([ctypes.c_int32] if name == "zng_inflate" else [])
    except (OSError, AttributeError):
        return None
    return lib, zlib_ng.__file__


_ZNG = _load_zng()
ZLIB_NG: str | None = None if _ZNG is None else _ZNG[1]  # the library streaming inflates, if any


class StreamInflater:
    """One zlib-ng inflate stream (not thread-safe: one per reading thread).

    :meth:`start` a zlib stream, then :meth:`into` fills buffer after buffer with what comes
    next; :attr:`ended` once the stream's end is reached.
    """

    def __init__(self) -> None:
        if _ZNG is None:
            raise RuntimeError("no zlib-ng: install the 'zlib-ng' wheel")
        self._lib = _ZNG[0]
        self._z = _ZngStream()
        self._check(self._lib.zng_inflateInit(ctypes.byref(self._z)), "inflateInit")
        weakref.finalize(self, self._lib.zng_inflateEnd, ctypes.byref(self._z))
        self._src: np.ndarray | None = None
        self.ended = True

    def _check(self, rc: int, what: str) -> None:
        if rc not in (_Z_OK, _Z_STREAM_END):
            msg = self._z.msg.decode(errors="replace") if self._z.msg else f"error {rc}"
            raise deflate.DeflateError(f"zlib stream does not inflate ({what}): {msg}")

    def start(self, src: np.ndarray) -> None:
        """Begin inflating the zlib stream ``src`` (uint8, kept alive until the stream ends)."""
        self._check(self._lib.zng_inflateReset(ctypes.byref(self._z)), "inflateReset")
        self._src = src
        self._z.next_in, self._z.avail_in = src.ctypes.data, src.nbytes
        self.ended = False

    def into(self, dst: np.ndarray) -> int:
        """Inflate the next bytes into ``dst`` (contiguous) until it is full or the stream
        ends; the number of bytes written."""
        if self.ended:
            return 0
        z = self._z
        z.next_out, z.avail_out = dst.ctypes.data, dst.nbytes
        rc = self._lib.zng_inflate(ctypes.byref(z), 0)  # Z_NO_FLUSH
        written = dst.nbytes - z.avail_out
        if rc == _Z_STREAM_END:
            self.ended, self._src = True, None
        elif rc != _Z_OK or (written == 0 and z.avail_in == 0):
            self.ended, self._src = True, None
            raise deflate.DeflateError(
                "zlib stream does not inflate: "
                + (z.msg.decode(errors="replace") if z.msg else "it ends before its end marker")
            )
        return written

    @property
    def total_out(self) -> int:
        return int(self._z.total_out)
