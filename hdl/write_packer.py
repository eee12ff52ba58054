"""Write gearbox of the store unit: a row chunk at any byte address -> aligned bus beats.

A chunk is up to ``chunk_bytes`` bytes that go to device memory starting at byte ``addr``.
The packer issues one bus write request covering the aligned beats and then the beats, with
byte strobes set only on the chunk's bytes, so neighbouring bytes in memory are never
touched. One chunk is in the packer at a time.

Tested by ``tests/test_accelerator_units.py`` (Amaranth simulator).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .unit_ports import BusRequest

__all__ = ["WritePacker"]


class WritePacker(wiring.Component):
    """Chunk in, bus request and strobed beats out.

    Parameters
    ----------
    bus_bytes, chunk_bytes : int

    Ports
    -----
    i_chunk : In(stream.Signature({"data": 8*chunk_bytes, "addr": 32, "nbytes": ...}))
    o_req : Out(BusRequest())
    o_beat : Out(stream.Signature({"data": 8*bus_bytes, "strb": bus_bytes}))
    busy : Out(1)
    """

    def __init__(self, bus_bytes, chunk_bytes):
        self._bus = bus_bytes
        self._chunk = chunk_bytes
        super().__init__({
            "i_chunk": In(stream.Signature(data.StructLayout({
                "data": 8 * chunk_bytes, "addr": 32, "nbytes": range(chunk_bytes + 1)}))),
            "o_req": Out(BusRequest()),
            "o_beat": Out(stream.Signature(data.StructLayout({"data": 8 * bus_bytes,
                                                              "strb": bus_bytes}))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B, W = self._bus, self._chunk
        lg = (B - 1).bit_length()
        total = W + B
        beats_max = -(-total // B)
        buf = Signal(8 * beats_max * B)
        strb = Signal(beats_max * B)
        beats_left = Signal(range(beats_max + 1))
        req_pending = Signal()
        req_addr = Signal(32)
        req_beats = Signal(16)

        chunk = self.i_chunk.payload
        offset = chunk.addr[:lg] if lg else 0
        mask = Signal(W)
        # A thermometer code: a compare per byte, no carry chain.
        m.d.comb += mask.eq(Cat(*(chunk.nbytes > i for i in range(W))))
        m.d.comb += self.i_chunk.ready.eq((beats_left == 0) & ~req_pending)
        with m.If(self.i_chunk.valid & self.i_chunk.ready):
            m.d.sync += [
                buf.eq(chunk.data << (offset * 8) if lg else chunk.data),
                strb.eq(mask << offset if lg else mask),
                beats_left.eq((offset + chunk.nbytes + B - 1) >> lg),
                req_pending.eq(1),
                req_addr.eq(chunk.addr & ~(B - 1)),
                req_beats.eq((offset + chunk.nbytes + B - 1) >> lg),
            ]
        m.d.comb += [self.o_req.valid.eq(req_pending), self.o_req.payload.addr.eq(req_addr),
                     self.o_req.payload.beats.eq(req_beats)]
        with m.If(self.o_req.valid & self.o_req.ready):
            m.d.sync += req_pending.eq(0)

        m.d.comb += [self.o_beat.valid.eq(beats_left != 0),
                     self.o_beat.payload.data.eq(buf[:8 * B]),
                     self.o_beat.payload.strb.eq(strb[:B])]
        with m.If(self.o_beat.valid & self.o_beat.ready):
            m.d.sync += [beats_left.eq(beats_left - 1), buf.eq(buf >> (8 * B)),
                         strb.eq(strb >> B)]
        m.d.comb += self.busy.eq((beats_left != 0) | req_pending)
        return m
