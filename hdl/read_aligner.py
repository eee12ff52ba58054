"""Byte realignment from bus beats to scratchpad rows (the load path's gearbox).

A *segment* is a run of ``nbytes`` bytes that starts ``offset`` bytes into its first bus
beat. The aligner drops the bytes before ``offset``, packs the rest into rows of ``row_bytes``
bytes and zero-pads the segment's last row, so DRAM data at any byte address lands in
scratchpad rows. A ``zero`` segment reads no beats and yields zero rows (padding).

The buffer can take a new beat in the same cycle it emits a row, so when rows are at least as
wide as the bus, one beat is absorbed per cycle.

Tested by ``tests/test_accelerator_units.py`` (Amaranth simulator, against a Python model).
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ReadAligner", "segment_layout"]


def segment_layout(bus_bytes):
    return data.StructLayout({
        "offset": range(bus_bytes),
        "nbytes": 17,
        "zero": 1,
    })


class ReadAligner(wiring.Component):
    """Bus beats in, scratchpad rows out.

    Parameters
    ----------
    bus_bytes : int
        Bytes per bus beat.
    row_bytes : int
        Bytes per output row.

    Ports
    -----
    i_seg : In(stream.Signature(segment_layout(bus_bytes)))
        Segments, in the order their beats arrive.
    i_data : In(stream.Signature(8 * bus_bytes))
        Beats: ceil((offset + nbytes) / bus_bytes) per non-zero segment.
    o_row : Out(stream.Signature(data.StructLayout({"data": 8 * row_bytes, "last": 1})))
        ceil(nbytes / row_bytes) rows per segment; ``last`` on a segment's final row.
    """

    def __init__(self, bus_bytes, row_bytes):
        for name, v in (("bus_bytes", bus_bytes), ("row_bytes", row_bytes)):
            if not isinstance(v, int) or v < 1:
                raise TypeError(f"Aligner {name} must be a positive integer, not {v!r}")
        self._bus = bus_bytes
        self._row = row_bytes
        super().__init__({
            "i_seg": In(stream.Signature(segment_layout(bus_bytes))),
            "i_data": In(stream.Signature(8 * bus_bytes)),
            "o_row": Out(stream.Signature(data.StructLayout({"data": 8 * row_bytes,
                                                             "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        B, W = self._bus, self._row
        cap = W + B - 1
        buf = [Signal(8, name=f"buf{i}") for i in range(cap)]
        count = Signal(range(cap + 1))
        active = Signal()          # a segment is being processed
        zero = Signal()
        to_read = Signal(17)       # segment bytes not yet absorbed
        to_emit = Signal(17)       # segment bytes not yet emitted as rows
        skip = Signal(range(B))    # bytes to drop from the next beat


        # Emit a row when a full one is buffered, or the segment's tail once all is read.
        emit = Signal()
        row_valid = Signal()
        m.d.comb += row_valid.eq(active & ((count >= W) | ((to_read == 0) & (count != 0)) |
                                           (zero & (to_emit != 0))))
        m.d.comb += [self.o_row.valid.eq(row_valid), emit.eq(row_valid & self.o_row.ready)]
        last_row = to_emit <= W
        m.d.comb += self.o_row.payload.last.eq(last_row)
        for i in range(W):
            m.d.comb += self.o_row.payload.data[8 * i:8 * i + 8].eq(
                Mux(~zero & (i < count), buf[i], 0))

        after_emit = Signal(range(cap + 1))
        m.d.comb += after_emit.eq(Mux(emit, Mux(count > W, count - W, 0), count))

        # Absorb a beat when, after this cycle's emit, fewer than W bytes remain.
        beat_bytes = [self.i_data.payload[8 * i:8 * i + 8] for i in range(B)]
        avail = Signal(range(B + 1))
        m.d.comb += avail.eq(B - skip)
        take = Signal(range(B + 1))
        m.d.comb += take.eq(Mux(to_read < avail, to_read, avail))
        absorb = Signal()
        m.d.comb += [self.i_data.ready.eq(active & ~zero & (to_read != 0) & (after_emit < W)),
                     absorb.eq(self.i_data.valid & self.i_data.ready)]

        beat_array = Array(beat_bytes)
        for i in range(cap):
            shifted = buf[i + W] if i + W < cap else 0
            kept = Mux(emit, shifted, buf[i])
            pos = i - after_emit  # position within the appended bytes
            incoming = beat_array[(pos + skip)[:max(1, (2 * B).bit_length())]]
            in_range = absorb & (i >= after_emit) & (i < after_emit + take)
            m.d.sync += buf[i].eq(Mux(in_range, incoming, kept))

        m.d.sync += count.eq(after_emit + Mux(absorb, take, 0))
        with m.If(absorb):
            m.d.sync += [to_read.eq(to_read - take), skip.eq(0)]
        with m.If(emit):
            m.d.sync += to_emit.eq(Mux(last_row, 0, to_emit - W))
            with m.If(last_row):
                m.d.sync += [active.eq(0), count.eq(0)]

        # Take the next segment once the previous one is fully emitted, or in the cycle its
        # last row leaves (these assignments come last, so they win over the ones above).
        m.d.comb += self.i_seg.ready.eq(~active | (emit & last_row))
        with m.If(self.i_seg.valid & self.i_seg.ready):
            seg = self.i_seg.payload
            m.d.sync += [active.eq(1), zero.eq(seg.zero), to_read.eq(seg.nbytes),
                         to_emit.eq(seg.nbytes), skip.eq(seg.offset), count.eq(0)]
        return m
