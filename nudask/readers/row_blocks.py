"""Row blocks of a 2-D HDF5 dataset, read faster than h5py reads them.

For the common case, a chunked dataset whose only filter is deflate (gzip),
the compressed chunks are read as they are stored (``read_direct_chunk``) and
inflated without HDF5's own zlib path, about 4x faster. Where each chunk holds
whole rows, a chunk is streamed: zlib-ng inflates it piece by piece (about
:data:`PIECE_BYTES`) into one small buffer, and the caller consumes each piece
while it is still in cache; the stream goes on from one call to the next, so a
chunk shared by neighbouring events is inflated once. Otherwise libdeflate
inflates whole chunks, and the band of rows last inflated is kept until reading
moves past it. Any other layout or filter pipeline goes through h5py's
``read_direct``, with the same results.

Every buffer (compressed bytes, inflated chunk or piece, band) is allocated once
per ``RowBlocks`` and reused: a fresh multi-MB buffer per chunk is what made
reading slow under glibc's default malloc settings (its pages are handed back
to the system on free and faulted in again on the next chunk).
"""

from __future__ import annotations

from collections.abc import Iterator

import deflate
import h5py
import numpy as np

from .inflate_into import LIBDEFLATE, ZLIB_NG, StreamInflater, ZlibInflater

PIECE_BYTES = 1 << 20  # a streamed piece: about one L2 cache, so the kernel reads it from cache


def plain_deflate(dset: h5py.Dataset) -> bool:
    """True if ``dset`` is chunked and stored with the deflate filter alone."""
    if dset.chunks is None or dset.ndim != 2:
        return False
    plist = dset.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    return filters == [h5py.h5z.FILTER_DEFLATE]


class RowBlocks:
    """Yield ``(first_row, block)`` pieces covering rows ``[start, stop)``.

    Blocks are views into reused buffers: consume each before asking for the
    next range.
    """

    def __init__(
        self,
        dset: h5py.Dataset,
        *,
        fast: bool | None = None,
        band_rows: int = 1024,
        stream: bool | None = None,
    ):
        self.dset = dset
        self.fast = plain_deflate(dset) if fast is None else fast
        # whole rows per chunk: a chunk can be inflated piece by piece, in row order
        whole_rows = self.fast and dset.chunks[1] >= dset.shape[1]
        self.stream = (whole_rows and ZLIB_NG is not None) if stream is None else stream and whole_rows
        self._stream = _ChunkStream(dset.chunks, dset.dtype) if self.stream else None
        self.band_rows = dset.chunks[0] if self.fast else (dset.chunks or (band_rows,))[0]
        self._band: tuple[int, np.ndarray] | None = None  # (band index, rows)
        self.inflated = 0  # chunks inflated so far (to check none is done twice)
        self._scratch: np.ndarray | None = None
        self._inflater = ZlibInflater() if self.fast and LIBDEFLATE else None
        self._raw = np.empty(0, np.uint8)  # one compressed chunk as stored
        self._chunk: np.ndarray | None = None  # one inflated chunk
        self._band_buf: np.ndarray | None = None  # a band assembled from several chunks

    def scratch(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A reusable buffer of ``shape`` for work on a block (valid until the next call)."""
        size = int(np.prod(shape))
        if self._scratch is None or self._scratch.size < size or self._scratch.dtype != dtype:
            self._scratch = np.empty(max(size, self.band_rows * self.dset.shape[1]), dtype)
        return self._scratch[:size].reshape(shape)

    def blocks(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        if self.stream:
            yield from self._streamed(start, stop)
            return
        step = self.band_rows
        for band in range(start // step, -(-stop // step)):
            rows = self._get_band(band)
            lo = max(start, band * step)
            hi = min(stop, band * step + rows.shape[0])
            if hi > lo:
                yield lo, rows[lo - band * step : hi - band * step]

    def finish(self) -> None:
        """Inflates the rest of the chunk being streamed: its checksum, at the stream's end, vouches
        for the rows already handed out (call it before trusting the last ones)."""
        if self._stream is not None:
            self._stream.finish()

    def _streamed(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        """Rows ``[start, stop)`` in pieces of about :data:`PIECE_BYTES`, each chunk's stream
        going on where the previous call left it (chunks shared by neighbouring events)."""
        assert self._stream is not None
        s, step = self._stream, self.band_rows
        for band in range(start // step, -(-stop // step)):
            lo, hi = max(start, band * step), min(stop, (band + 1) * step, self.dset.shape[0])
            if hi <= lo:
                continue
            if s.band != band or lo < s.first:
                if not self._open(band):  # never written, or stored uncompressed: whole
                    rows = self._get_band(band)
                    yield lo, rows[lo - band * step : hi - band * step]
                    continue
            while lo < hi:
                if lo >= s.first + s.n:
                    s.next()
                    continue
                top = min(hi, s.first + s.n)
                yield lo, s.piece[lo - s.first : top - s.first]
                lo = top

    def _open(self, band: int) -> bool:
        """Starts streaming chunk ``band``; False if it is not deflated (the fill value, or raw)."""
        assert self._stream is not None
        self._stream.finish()  # the chunk left behind: checked to its end
        self._stream.band, self._band = -1, None  # a band kept whole may be a view of the raw buffer
        offset = (band * self.band_rows, 0)
        info = self.dset.id.get_chunk_info_by_coord(offset)
        if info.byte_offset is None or info.filter_mask & 1:
            return False
        if self._raw.size < info.size:
            self._raw = np.empty(max(info.size, 2 * self._raw.size), np.uint8)
        self.dset.id.read_direct_chunk(offset, out=self._raw)
        self._stream.open(band, offset[0], self._raw[: info.size])
        self.inflated += 1
        return True

    def _get_band(self, band: int) -> np.ndarray:
        if self._band is None or self._band[0] != band:
            self._band = (band, self._read_band(band))
        return self._band[1]

    def _band_buffer(self) -> np.ndarray:
        if self._band_buf is None:
            self._band_buf = np.empty((self.band_rows, self.dset.shape[1]), self.dset.dtype)
        return self._band_buf

    def _read_band(self, band: int) -> np.ndarray:
        r0 = band * self.band_rows
        r1 = min(r0 + self.band_rows, self.dset.shape[0])
        if not self.fast:
            out = self._band_buffer()[: r1 - r0]
            if r1 > r0:
                self.dset.read_direct(out, np.s_[r0:r1], np.s_[0 : r1 - r0])
            return out
        ccols = self.dset.chunks[1]
        ncols = self.dset.shape[1]
        if ccols >= ncols:  # whole rows in one chunk: use the inflated buffer as it is
            return self._inflate((r0, 0))[: r1 - r0, :ncols]
        out = self._band_buffer()[: r1 - r0]
        for c0 in range(0, ncols, ccols):
            chunk = self._inflate((r0, c0))
            out[:, c0 : c0 + ccols] = chunk[: r1 - r0, : ncols - c0]
        return out

    def _inflate(self, offset: tuple[int, int]) -> np.ndarray:
        dset = self.dset
        shape = dset.chunks
        if self._chunk is None:
            self._chunk = np.empty(shape, dset.dtype)
        chunk = self._chunk
        info = dset.id.get_chunk_info_by_coord(offset)
        if info.byte_offset is None:  # never written: the fill value
            chunk.fill(dset.fillvalue)
            return chunk
        if self._raw.size < info.size:
            self._raw = np.empty(max(info.size, 2 * self._raw.size), np.uint8)
        mask, _ = dset.id.read_direct_chunk(offset, out=self._raw)
        raw = self._raw[: info.size]
        self.inflated += 1
        if mask & 1:  # bit 0 set means deflate was skipped for this chunk: stored as it is
            if raw.size != chunk.nbytes:
                raise deflate.DeflateError(f"uncompressed chunk holds {raw.size} bytes, not {chunk.nbytes}")
            return raw.view(dset.dtype).reshape(shape)
        if self._inflater is None:  # no libdeflate to call: the allocating binding
            return np.frombuffer(deflate.zlib_decompress(raw, chunk.nbytes), dset.dtype).reshape(shape)
        self._inflater.into(raw, chunk)
        return chunk


class _ChunkStream:
    """A chunk being inflated piece by piece into one reused buffer: ``piece[:n]`` holds its
    rows ``[first, first + n)`` of the dataset (``band`` -1: none)."""

    def __init__(self, chunks: tuple[int, ...], dtype) -> None:
        self.inflater = StreamInflater()
        row = chunks[1] * np.dtype(dtype).itemsize
        self.piece = np.empty((max(1, PIECE_BYTES // row), chunks[1]), dtype)
        self.chunk_bytes = chunks[0] * row
        self.band, self.first, self.n = -1, 0, 0

    def open(self, band: int, first: int, raw: np.ndarray) -> None:
        self.inflater.start(raw)
        self.band, self.first, self.n = band, first, 0

    def next(self) -> None:
        """The next piece of the chunk (an error if the chunk has none left)."""
        row = self.piece[0].nbytes
        written = self.inflater.into(self.piece)
        total = self.inflater.total_out
        if not written or written % row or (self.inflater.ended and total != self.chunk_bytes):
            self.band = -1
            raise deflate.DeflateError(
                f"zlib stream inflates to {total} bytes, the chunk holds {self.chunk_bytes}"
            )
        self.first, self.n = self.first + self.n, written // row

    def finish(self) -> None:
        while self.band >= 0 and not self.inflater.ended:
            self.next()
