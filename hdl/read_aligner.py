"""Byte realignment from bus beats to scratchpad rows (the load path's gearbox).

A *segment* is a run of ``nbytes`` bytes that starts ``offset`` bytes into its first bus
beat. The aligner drops the bytes before ``offset``, packs the rest into rows of ``row_bytes``
bytes and zero-pads the segment's last row, so DRAM data at any byte address lands in
scratchpad rows. A ``zero`` segment reads no beats and yields zero rows (padding).

The bytes wait in a ring of ``N`` bytes (a power-of-two number of rows, at least
``row_bytes + bus_bytes - 1`` bytes): a beat's bytes are written at the write pointer and
rows are read at the row pointer, so neither the write position nor the byte select depends
on whether a row leaves in the same cycle (a shifting buffer would put the emit decision in
front of every byte's multiplexer). The buffer takes a new beat in the same cycle it emits a
row, so when rows are at least as wide as the bus, one beat is absorbed per cycle.

For timing, the byte count is also kept as registered threshold flags (``count >= k``), each
next value chosen from flags of the three possible next counts, so the emit decision is a LUT
or two on flip-flops. Every segment is first taken into a register slot (``i_seg.ready`` is a
flip-flop); a segment then starts from that slot, in the cycle after the previous one's last
row (a segment arriving at an idle aligner starts a cycle after it is taken), and its first
take, remaining bytes and row flags are computed from the slot as it starts.

Tested by ``tests/test_read_aligner.py`` (Amaranth simulator, against a Python model, with
random stalls) and by the accelerator tests.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ReadAligner", "row_layout", "segment_layout"]


def segment_layout(bus_bytes, tag_width=0):
    return data.StructLayout({
        "offset": range(bus_bytes),
        "nbytes": 17,
        "zero": 1,
        "tag": tag_width,
    })


def row_layout(row_bytes, tag_width=0):
    return data.StructLayout({"data": 8 * row_bytes, "first": 1, "last": 1, "tag": tag_width})


def _ring_rows(bus_bytes, row_bytes):
    """Rows in the ring: a power of two, holding at least row_bytes + bus_bytes - 1 bytes."""
    need = -(-(row_bytes + bus_bytes - 1) // row_bytes)
    return 1 << (need - 1).bit_length()


class ReadAligner(wiring.Component):
    """Bus beats in, scratchpad rows out.

    Parameters
    ----------
    bus_bytes : int
        Bytes per bus beat (a power of two).
    row_bytes : int
        Bytes per output row.
    tag_width : int
        Bits of user data that travel with each segment to its rows.

    Ports
    -----
    i_seg : In(stream.Signature(segment_layout(bus_bytes, tag_width)))
        Segments, in the order their beats arrive.
    i_data : In(stream.Signature(8 * bus_bytes))
        Beats: ceil((offset + nbytes) / bus_bytes) per non-zero segment.
    o_row : Out(stream.Signature(row_layout(row_bytes, tag_width)))
        ceil(nbytes / row_bytes) rows per segment; ``first`` and ``last`` on a segment's
        first and final row, ``tag`` the segment's.
    busy : Out(1)
        A segment is being processed or waits in the queue (registered).
    """

    def __init__(self, bus_bytes, row_bytes, tag_width=0):
        for name, v in (("bus_bytes", bus_bytes), ("row_bytes", row_bytes)):
            if not isinstance(v, int) or v < 1:
                raise TypeError(f"Aligner {name} must be a positive integer, not {v!r}")
        if not isinstance(tag_width, int) or tag_width < 0:
            raise TypeError(f"Aligner tag_width must be a non-negative integer, "
                            f"not {tag_width!r}")
        if bus_bytes & (bus_bytes - 1):
            raise ValueError(f"Aligner bus_bytes must be a power of two, not {bus_bytes!r}")
        self._bus = bus_bytes
        self._row = row_bytes
        self._tag = tag_width
        super().__init__({
            "i_seg": In(stream.Signature(segment_layout(bus_bytes, tag_width))),
            "i_data": In(stream.Signature(8 * bus_bytes)),
            "o_row": Out(stream.Signature(row_layout(row_bytes, tag_width))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B, W = self._bus, self._row
        slots = _ring_rows(B, W)
        N = slots * W
        lg_b = (B - 1).bit_length()
        pow2 = not N & (N - 1)

        def wrap(v):
            """v mod N for 0 <= v < 2N."""
            return v[:(N - 1).bit_length()] if pow2 else Mux(v >= N, v - N, v)

        buf = [Signal(8, name=f"buf{i}") for i in range(N)]
        count = Signal(range(N + 1))   # bytes buffered, from the row pointer on
        # count >= k for k in 1..N (a thermometer code of count), registered alongside count.
        levels = range(1, N + 1)
        at_least = {k: Signal(name=f"count_ge{k}") for k in levels}
        rp = Signal(range(slots))       # row pointer (in rows)
        wp = Signal(range(N))           # write pointer (in bytes)
        wofs = Signal(range(N))         # wp - (bytes to drop from the next beat), mod N
        active = Signal()
        zero = Signal()
        take = Signal(range(B + 1))     # bytes the next beat brings: min(to_read, B - skip)
        take_nz = Signal()              # take != 0
        rest = Signal(17)               # bytes to absorb after those (to_read - take)
        to_emit = Signal(17)            # segment bytes not yet emitted as rows
        last_row = Signal()             # to_emit <= W
        first_row = Signal()
        tag = Signal(self._tag)
        emit_left = Signal()            # to_emit != 0

        # Emit a row when a full one is buffered, or the segment's tail once all is read.
        row_valid = Signal()
        emit = Signal()
        m.d.comb += row_valid.eq(active & (at_least[W] | (~take_nz & at_least[1]) |
                                           (zero & emit_left)))
        m.d.comb += [self.o_row.valid.eq(row_valid), emit.eq(row_valid & self.o_row.ready),
                     self.o_row.payload.last.eq(last_row),
                     self.o_row.payload.first.eq(first_row), self.o_row.payload.tag.eq(tag)]
        for i in range(W):
            byte = Signal(8, name=f"row_byte{i}")
            with m.Switch(rp):
                for s in range(slots):
                    with m.Case(s):
                        m.d.comb += byte.eq(buf[s * W + i])
            m.d.comb += self.o_row.payload.data[8 * i:8 * i + 8].eq(
                Mux(~zero & at_least[i + 1], byte, 0))

        # Absorb a beat when, after this cycle's emit, fewer than W bytes remain. While bytes
        # are still to be read (take != 0) of a non-zero segment, a row is emitted exactly
        # when count >= W and the row is taken, so ``ready`` needs only registers and
        # ``o_row.ready``, not the emit decision.
        room = Signal()
        m.d.comb += room.eq(~at_least[W] | (self.o_row.ready & ~at_least[2 * W]))
        absorb = Signal()
        m.d.comb += [self.i_data.ready.eq(active & ~zero & take_nz & room),
                     absorb.eq(self.i_data.valid & self.i_data.ready)]
        beat = [self.i_data.payload[8 * i:8 * i + 8] for i in range(B)]
        for k in range(N):
            rel = Signal(range(N), name=f"rel{k}")        # position after the write pointer
            src = Signal(range(N), name=f"src{k}")        # byte of the beat that lands here
            m.d.comb += [rel.eq(wrap(k + N - wp)), src.eq(wrap(k + N - wofs))]
            with m.If(absorb & (rel < take)):
                with m.Switch(src[:lg_b] if lg_b else 0):
                    for j in range(B):
                        with m.Case(j):
                            m.d.sync += buf[k].eq(beat[j])

        with m.If(absorb):
            new_wp = wrap(wp + take)
            more = rest[lg_b:] != 0
            m.d.sync += [take.eq(Mux(more, B, rest)), rest.eq(Mux(more, rest - B, 0)),
                         take_nz.eq(rest != 0), wp.eq(new_wp), wofs.eq(new_wp)]

        # The four possible next counts (and their flags) come from registers; emit and
        # absorb only select. A row leaves with at most W bytes buffered only if it is the
        # segment's last (then nothing is absorbed with it), so ``count - W`` saturates at 0
        # and count is 0 whenever no segment is active: nothing else needs to clear it.
        grown = Signal(range(N + B + 1))
        m.d.comb += grown.eq(count + take)
        both = Signal(range(N + B + 1))
        m.d.comb += both.eq(grown - W)
        # grown >= k is count >= k - take: the registered flags shifted by ``take`` (a
        # multiplexer on flip-flops, with no adder in front of it).
        def flag(j):
            return 1 if j <= 0 else (at_least[j] if j <= N else 0)
        grown_ge = {k: Signal(name=f"grown_ge{k}") for k in range(1, N + W + 1)}
        with m.Switch(take):
            for t in range(B + 1):
                with m.Case(t):
                    m.d.comb += [grown_ge[k].eq(flag(k - t)) for k in grown_ge]
        with m.Switch(Cat(absorb, emit)):
            with m.Case(0b01):
                m.d.sync += count.eq(grown)
                m.d.sync += [at_least[k].eq(grown_ge[k]) for k in levels]
            with m.Case(0b10):
                m.d.sync += count.eq(Mux(at_least[W], count - W, 0))
                m.d.sync += [at_least[k].eq(at_least[k + W] if k + W <= N else 0)
                             for k in levels]
            with m.Case(0b11):
                m.d.sync += count.eq(both)
                m.d.sync += [at_least[k].eq(grown_ge[k + W]) for k in levels]
        with m.If(emit):
            m.d.sync += [rp.eq(rp + 1), to_emit.eq(to_emit - W), last_row.eq(to_emit <= 2 * W),
                         first_row.eq(0),
                         emit_left.eq(~last_row)]
            with m.If(last_row):
                m.d.sync += active.eq(0)

        # Every segment is taken into a two-entry queue as it arrives. ``i_seg.ready`` is a
        # flip-flop (the second entry is free); the head starts when none is active or in the
        # cycle the last row leaves, and refills in that same cycle (from the second entry,
        # or straight from ``i_seg``), so one-row segments leave one per cycle. The start
        # values are worked out from the head as it starts, so that the arithmetic begins at
        # the head's flip-flops, not at the producer's queue (a LUT-RAM read). These
        # assignments come last, so they win over the ones above.
        start_layout = segment_layout(B, self._tag)
        incoming = self.i_seg.payload
        head, head_valid = Signal(start_layout), Signal()
        spare, spare_valid = Signal(start_layout), Signal()
        m.d.comb += [self.i_seg.ready.eq(~spare_valid),
                     self.busy.eq(active | head_valid | spare_valid)]
        can_start = ~active | (emit & last_row)
        consume = Signal()
        m.d.comb += consume.eq(can_start & head_valid)

        # One subtraction: its sign says whether the segment ends in its first beat.
        beyond = Signal(signed(19))
        m.d.comb += beyond.eq(head.nbytes - (B - head.offset))
        first_take = Signal(range(B + 1))
        m.d.comb += first_take.eq(Mux(beyond < 0, head.nbytes, B - head.offset))
        with m.If(consume):
            m.d.sync += [active.eq(1), zero.eq(head.zero), rest.eq(Mux(beyond < 0, 0, beyond)),
                         first_row.eq(1), tag.eq(head.tag),
                         to_emit.eq(head.nbytes), last_row.eq(head.nbytes <= W),
                         emit_left.eq(head.nbytes != 0),
                         take.eq(first_take), take_nz.eq(first_take != 0),
                         rp.eq(0), wp.eq(0), wofs.eq(wrap(N - head.offset))]
        # The head refills when it is empty or being started: from the second entry if it
        # holds one (then ``i_seg`` is not ready), else from ``i_seg``.
        with m.If(~head_valid | consume):
            m.d.sync += [head.eq(Mux(spare_valid, spare, incoming)),
                         head_valid.eq(spare_valid | self.i_seg.valid)]
        # The empty second entry loads every cycle; it holds a segment only when one arrives
        # while the head is kept.
        with m.If(~spare_valid):
            m.d.sync += [spare.eq(incoming),
                         spare_valid.eq(self.i_seg.valid & head_valid & ~consume)]
        with m.Else():
            # (The head is valid whenever the second entry is: it empties when the head
            # starts and refills from it.)
            m.d.sync += spare_valid.eq(~consume)
        return m
