"""Write gearbox of the store unit: runs of row chunks at any byte address -> bus bursts.

A chunk is up to ``chunk_bytes`` bytes that go to device memory starting at byte ``addr``.
Chunks come in **runs**: the chunks of a run are contiguous in memory, in address order, and
the run is written as *one* bus write request covering its aligned beats (the AXI writer
splits it into bursts). The first chunk of a run (``first``) carries the run's length in
bytes (``run_bytes``) and issues the request; the last (``last``) closes it. A chunk that is
both is a run of its own, which is how rows that are not contiguous are written. Byte strobes
are set only on the chunks' bytes, so neighbouring bytes in memory are never touched.

Why runs: a STORE of one-byte rows (the attention scores, one per key) would otherwise cost
a bus request, a burst and a write response per byte; as a run its rows fill whole beats.

Bytes are shifted into a buffer of two beats plus a chunk; a chunk is taken whenever fewer
than two beats are waiting, and a full beat leaves every cycle the bus takes it, so chunks of
up to a beat stream at one per cycle. ``i_chunk.ready`` depends on registers only.

``flush`` ends an open run whose remaining chunks will never come (the store unit stopped on
an error): the beats the request still owes are sent with their missing bytes unstrobed, so
the bus transaction completes and nothing else is written.

Tested by ``tests/test_write_packer.py`` (Amaranth simulator) and through the accelerator
tests.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .unit_ports import BusRequest

__all__ = ["WritePacker"]


class WritePacker(wiring.Component):
    """Chunks in, one bus request per run and strobed beats out.

    Parameters
    ----------
    bus_bytes, chunk_bytes : int

    Ports
    -----
    i_chunk : In(stream.Signature({"data": 8*chunk_bytes, "addr": 32, "nbytes": ...,
                                   "first": 1, "last": 1, "run_bytes": 16}))
        ``addr`` and ``run_bytes`` are used on the first chunk of a run only.
    o_req : Out(BusRequest())
    o_beat : Out(stream.Signature({"data": 8*bus_bytes, "strb": bus_bytes}))
    flush : In(1)
        No more chunks will come: finish the open run with unstrobed beats.
    busy : Out(1)
    """

    def __init__(self, bus_bytes, chunk_bytes):
        if bus_bytes not in (1, 2, 4, 8, 16, 32, 64):
            raise TypeError(f"Bus width must be a power of two number of bytes, not "
                            f"{bus_bytes!r}")
        if not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise TypeError(f"Chunk size must be a positive integer, not {chunk_bytes!r}")
        self._bus = bus_bytes
        self._chunk = chunk_bytes
        super().__init__({
            "i_chunk": In(stream.Signature(data.StructLayout({
                "data": 8 * chunk_bytes, "addr": 32, "nbytes": range(chunk_bytes + 1),
                "first": 1, "last": 1, "run_bytes": 16}))),
            "o_req": Out(BusRequest()),
            "o_beat": Out(stream.Signature(data.StructLayout({"data": 8 * bus_bytes,
                                                              "strb": bus_bytes}))),
            "flush": In(1),
            "busy": Out(1),
        })

    @property
    def bus_bytes(self):
        return self._bus

    @property
    def chunk_bytes(self):
        return self._chunk

    def elaborate(self, platform):
        m = Module()
        B, W = self._bus, self._chunk
        lg = (B - 1).bit_length()
        size = 2 * B + W                      # bytes the buffer can hold
        buf = Signal(8 * size)
        strb = Signal(size)
        level = Signal(range(size + 1))       # bytes in the buffer (from the beat's start)
        beats_left = Signal(17)               # beats the open run still owes the bus
        closed = Signal()                     # the run's last chunk is in (or flushed)
        req_pending = Signal()
        req_addr = Signal(32)
        req_beats = Signal(17)

        chunk = self.i_chunk.payload
        offset = chunk.addr[:lg] if lg else Const(0, 1)
        mask = Signal(W)
        # A thermometer code: a compare per byte, no carry chain.
        m.d.comb += mask.eq(Cat(*(chunk.nbytes > i for i in range(W))))
        # Bytes past `nbytes` may hold anything (the unused lanes of a row); they must not
        # reach the buffer, where the next chunks' bytes go.
        valid_data = Signal(8 * W)
        m.d.comb += valid_data.eq(Cat(*(Mux(mask[i], chunk.data[8 * i:8 * i + 8], 0)
                                        for i in range(W))))

        idle = (beats_left == 0) & ~req_pending
        # A chunk is taken when it starts a run and none is open, or continues the open one
        # while fewer than two beats wait (ready depends on registers only).
        m.d.comb += self.i_chunk.ready.eq(Mux(chunk.first, idle,
                                              (beats_left != 0) & ~closed & (level < 2 * B)))
        take = self.i_chunk.valid & self.i_chunk.ready

        # A beat leaves when it is full, or when the run is closed (its last, partial beat,
        # or unstrobed beats after a flush).
        m.d.comb += [self.o_beat.valid.eq((beats_left != 0) & ((level >= B) | closed)),
                     self.o_beat.payload.data.eq(buf[:8 * B]),
                     self.o_beat.payload.strb.eq(strb[:B])]
        fire = self.o_beat.valid & self.o_beat.ready

        # Insert the chunk at `at` (its offset in the first beat, or after the bytes held),
        # then drop the beat that left.
        at = Mux(chunk.first, offset, level)
        base_buf = Mux(chunk.first, 0, buf)
        base_strb = Mux(chunk.first, 0, strb)
        new_buf = Mux(take, base_buf | (valid_data << (at * 8)), buf)
        new_strb = Mux(take, base_strb | (mask << at), strb)
        new_level = Mux(take, at + chunk.nbytes, level)
        with m.If(fire):
            m.d.sync += [buf.eq(new_buf >> (8 * B)), strb.eq(new_strb >> B),
                         level.eq(Mux(new_level > B, new_level - B, 0)),
                         beats_left.eq(beats_left - 1)]
        with m.Else():
            m.d.sync += [buf.eq(new_buf), strb.eq(new_strb), level.eq(new_level)]

        with m.If(take & chunk.first):
            run_beats = (offset + chunk.run_bytes + B - 1) >> lg
            m.d.sync += [beats_left.eq(run_beats), req_pending.eq(1),
                         req_addr.eq(chunk.addr & ~(B - 1)), req_beats.eq(run_beats),
                         closed.eq(chunk.last)]
        with m.Elif(take & chunk.last):
            m.d.sync += closed.eq(1)
        with m.Elif(self.flush & (beats_left != 0)):
            m.d.sync += closed.eq(1)

        m.d.comb += [self.o_req.valid.eq(req_pending), self.o_req.payload.addr.eq(req_addr),
                     self.o_req.payload.beats.eq(req_beats)]
        with m.If(self.o_req.valid & self.o_req.ready):
            m.d.sync += req_pending.eq(0)
        m.d.comb += self.busy.eq((beats_left != 0) | req_pending)
        return m
