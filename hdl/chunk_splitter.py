"""Chunk splitter of the store path: a row's chunk -> pieces of at most one bus beat.

The store unit's rows leave as chunks of up to ``chunk_bytes`` bytes (an int32 row is
4 * cols bytes) for the write packer. The bus takes ``piece_bytes`` (a beat) per cycle, so
the packer gains nothing from chunks wider than a beat, and every byte of chunk width costs
it flip-flops in each of its stages (input stage, two slots, the staged chunk) and fan-out on
its insertion controls. This splitter hands the packer a chunk one piece at a time: piece
``p`` is the chunk's bytes ``[p * piece_bytes, (p + 1) * piece_bytes)`` that are valid (at
most ``nbytes`` in all), at ``addr + p * piece_bytes``. Pieces of a chunk are contiguous, so
they continue its run: only the first piece keeps ``first`` (and ``run_bytes``), only the last
keeps ``last``. A chunk of ``n`` valid bytes leaves as ``ceil(n / piece_bytes)`` pieces (one
if ``n`` is 0), one per cycle while the packer takes them.

It is combinational (the chunk waits in the stage in front of it, which the splitter
acknowledges with its last piece, so that stage's ``busy`` covers a chunk partly sent; the
packer registers its input), with one register, the piece index. The producer gives each
chunk the index of its last piece (``last_piece``, from :func:`last_piece_index`, worked out
where the chunk's byte count is made), so the acknowledgement, which enables the whole chunk
register in front, is a compare of two small registers.

Tested by ``tests/test_chunk_splitter.py`` (Amaranth simulator, random stalls) and through
the accelerator tests.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ChunkSplitter", "chunk_layout", "split_chunk_layout", "last_piece_index"]


def chunk_layout(chunk_bytes):
    """The write packer's chunk: ``data``, ``addr``, ``nbytes``, ``first``, ``last``,
    ``run_bytes``."""
    return data.StructLayout({"data": 8 * chunk_bytes, "addr": 32,
                              "nbytes": range(chunk_bytes + 1), "first": 1, "last": 1,
                              "run_bytes": 16})


def _pieces(chunk_bytes, piece_bytes):
    return -(-chunk_bytes // piece_bytes)


def split_chunk_layout(chunk_bytes, piece_bytes):
    """The splitter's input: a chunk and the index of its last piece (``last_piece``)."""
    fields = dict(chunk_layout(chunk_bytes).members)
    fields["last_piece"] = range(_pieces(chunk_bytes, piece_bytes))
    return data.StructLayout(fields)


def last_piece_index(nbytes, piece_bytes):
    """``ceil(nbytes / piece_bytes) - 1`` (0 for no bytes) of an Amaranth value, for a
    power-of-two ``piece_bytes``."""
    if piece_bytes & (piece_bytes - 1):
        raise ValueError(f"Piece size must be a power of two, not {piece_bytes!r}")
    return Mux(nbytes == 0, 0, (nbytes - 1) >> (piece_bytes - 1).bit_length())


class ChunkSplitter(wiring.Component):
    """Chunks in, pieces of at most ``piece_bytes`` out.

    Parameters
    ----------
    chunk_bytes : int
        Width of the incoming chunks.
    piece_bytes : int
        Width of the pieces, at most ``chunk_bytes``.

    Ports
    -----
    i_chunk : In(stream.Signature(split_chunk_layout(chunk_bytes, piece_bytes)))
        ``last_piece`` must be ``last_piece_index(nbytes, piece_bytes)``; ``ready`` is high
        with the chunk's last piece.
    o_piece : Out(stream.Signature(chunk_layout(piece_bytes)))
    """

    def __init__(self, chunk_bytes, piece_bytes):
        for what, value in (("Chunk", chunk_bytes), ("Piece", piece_bytes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"{what} size must be a positive integer, not {value!r}")
        if piece_bytes > chunk_bytes:
            raise ValueError(f"Piece size {piece_bytes} must not exceed the chunk size "
                             f"{chunk_bytes}")
        if _pieces(chunk_bytes, piece_bytes) > 1 and piece_bytes & (piece_bytes - 1):
            raise ValueError(f"Piece size must be a power of two when chunks are split, not "
                             f"{piece_bytes!r}")
        self._chunk, self._piece = chunk_bytes, piece_bytes
        super().__init__({
            "i_chunk": In(stream.Signature(split_chunk_layout(chunk_bytes, piece_bytes))),
            "o_piece": Out(stream.Signature(chunk_layout(piece_bytes))),
        })

    @property
    def chunk_bytes(self):
        return self._chunk

    @property
    def piece_bytes(self):
        return self._piece

    def elaborate(self, platform):
        m = Module()
        W, P = self._chunk, self._piece
        pieces = _pieces(W, P)
        i, o = self.i_chunk, self.o_piece
        chunk = i.payload
        if pieces == 1:
            m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready)]
            m.d.comb += [getattr(o.payload, name).eq(getattr(chunk, name))
                         for name in chunk_layout(W).members]
            return m

        index = Signal(range(pieces))          # the piece on the output
        # Bytes of the chunk from this piece on: nbytes - index * P (nbytes >= index * P while
        # a later piece is out, since each piece but the last is full).
        left = Signal(range(W + 1))
        m.d.comb += left.eq(chunk.nbytes - index * P)
        final = index == chunk.last_piece
        padded = Cat(chunk.data, Const(0, 8 * (pieces * P - W)))
        m.d.comb += [
            o.valid.eq(i.valid),
            o.payload.data.eq(padded.word_select(index, 8 * P)),
            o.payload.addr.eq(chunk.addr + index * P),
            o.payload.nbytes.eq(Mux(final, left, P)),
            o.payload.first.eq(chunk.first & (index == 0)),
            o.payload.last.eq(chunk.last & final),
            o.payload.run_bytes.eq(chunk.run_bytes),
            i.ready.eq(o.ready & final),
        ]
        with m.If(o.valid & o.ready):
            m.d.sync += index.eq(Mux(final, 0, index + 1))
        return m
