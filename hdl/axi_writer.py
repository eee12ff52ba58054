"""AXI4 write master: (address, length) requests plus a data stream in, completions out.

Each request is split into INCR bursts of at most 256 beats that never cross a 4 KiB boundary
(:class:`~octet.hdl.axi.BurstSplitter`). AW is issued as soon as a burst is known, running
up to ``max_outstanding`` bursts ahead of their write responses; two FIFOs keep, per burst,
its length (for WLAST) and whether it ends its request (for ``o_done``). W is passed straight
through from ``i_data`` (WREADY is ``i_data.ready``). One ``o_done`` beat follows the last B
response of each request, with ``error`` set if any of its bursts got SLVERR or DECERR.

Tested by ``tests/test_axi_units.py`` (Amaranth simulator, a randomly stalling slave model
that checks WLAST and can answer errors) and ``tests/test_axi_rtl.py`` (Verilator against
cocotbext-axi's ``AxiRam``, which asserts WLAST and the 4 KiB rule).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import AxiBurst, AxiSignature, BurstSplitter
from .axi_reader import _check_outstanding

__all__ = ["AxiWriter", "write_request_layout", "write_data_layout"]


def write_request_layout(addr_width=32):
    """Payload of :attr:`AxiWriter.i_req`."""
    return data.StructLayout({"addr": addr_width, "beats": 16})


def write_data_layout(data_width=64):
    """Payload of :attr:`AxiWriter.i_data`."""
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


class AxiWriter(wiring.Component):
    """AXI4 write master with burst splitting and per-request completion.

    Parameters
    ----------
    addr_width : int
        AXI address width, 12 to 64.
    data_width : int
        AXI data width in bits, a power of two from 8 to 1024.
    max_outstanding : int
        Bursts that may be issued on AW and not yet answered on B, 1 to 256.
    id_width : int
        Width of AWID / BID; every burst uses AWID 0.

    Ports
    -----
    i_req : In(stream.Signature(StructLayout{"addr": addr_width, "beats": 16}))
        Write ``beats`` (>= 1) bus words from the bus-aligned byte address ``addr``.
    i_data : In(stream.Signature(StructLayout{"data": data_width, "strb": data_width // 8}))
        Exactly ``beats`` words per request, in request order; ``strb`` becomes WSTRB.
    o_done : Out(stream.Signature(StructLayout{"error": 1}))
        One beat per request, in order, once all its write responses arrived.
    m_axi : Out(AxiSignature(addr_width, data_width, id_width, read=False))
        The AW, W and B channels.
    busy : Out(1)
        A request is being split, a burst is outstanding or a completion is waiting.
    beat : Out(1)
        A W beat was transferred this cycle.
    """

    def __init__(self, addr_width=32, data_width=64, max_outstanding=8, *, id_width=4):
        bus = AxiSignature(addr_width, data_width, id_width, read=False)  # checks widths
        _check_outstanding(max_outstanding)
        self._addr_width = addr_width
        self._data_width = data_width
        self._max_outstanding = max_outstanding
        super().__init__({
            "i_req": In(stream.Signature(write_request_layout(addr_width))),
            "i_data": In(stream.Signature(write_data_layout(data_width))),
            "o_done": Out(stream.Signature(data.StructLayout({"error": 1}))),
            "m_axi": Out(bus),
            "busy": Out(1),
            "beat": Out(1),
        })

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    @property
    def max_outstanding(self):
        return self._max_outstanding

    def elaborate(self, platform):
        m = Module()
        bus = self.m_axi
        m.submodules.splitter = splitter = BurstSplitter(self._addr_width, self._data_width)
        wiring.connect(m, wiring.flipped(self.i_req), splitter.i_req)

        # Burst lengths for the W side and "ends its request" flags for the B side, both pushed
        # when AW is accepted; first-word-fall-through, readable in the following cycle.
        m.submodules.w_lens = w_lens = fifo.SyncFIFO(width=8, depth=self._max_outstanding)
        m.submodules.b_finals = b_finals = fifo.SyncFIFO(width=1, depth=self._max_outstanding)
        burst = splitter.o_burst
        room = w_lens.w_rdy & b_finals.w_rdy
        aw_fire = burst.valid & burst.ready
        m.d.comb += [
            # As in AxiReader: the splitter holds the burst until ready and room only falls
            # after a push, so AWVALID and its payload are stable until AWREADY.
            bus.awvalid.eq(burst.valid & room),
            burst.ready.eq(bus.awready & room),
            bus.awaddr.eq(burst.payload.addr),
            bus.awlen.eq(burst.payload.len),
            bus.awsize.eq((self._data_width // 8).bit_length() - 1),
            bus.awburst.eq(AxiBurst.INCR),
            bus.awid.eq(0),
            w_lens.w_en.eq(aw_fire),
            w_lens.w_data.eq(burst.payload.len),
            b_finals.w_en.eq(aw_fire),
            b_finals.w_data.eq(burst.payload.final),
        ]

        count = Signal(8)
        w_fire = bus.wvalid & bus.wready
        m.d.comb += [
            bus.wvalid.eq(self.i_data.valid & w_lens.r_rdy),
            self.i_data.ready.eq(bus.wready & w_lens.r_rdy),
            bus.wdata.eq(self.i_data.payload.data),
            bus.wstrb.eq(self.i_data.payload.strb),
            bus.wlast.eq(count == w_lens.r_data),
            w_lens.r_en.eq(w_fire & bus.wlast),
            self.beat.eq(w_fire),
        ]
        with m.If(w_fire):
            m.d.sync += count.eq(count + 1)
            with m.If(bus.wlast):
                m.d.sync += count.eq(0)

        # Completions: errors accumulate over a request's bursts; the o_done register takes
        # the request's last response only when it is empty or being emptied.
        failed = Signal()
        done_valid = Signal()
        done_error = Signal()
        b_fire = bus.bvalid & bus.bready
        error_now = failed | bus.bresp[1]
        m.d.comb += [
            bus.bready.eq(b_finals.r_rdy & (~done_valid | self.o_done.ready)),
            b_finals.r_en.eq(b_fire),
            self.o_done.valid.eq(done_valid),
            self.o_done.payload.error.eq(done_error),
            self.busy.eq(splitter.busy | (b_finals.level != 0) | done_valid),
        ]
        with m.If(self.o_done.valid & self.o_done.ready):
            m.d.sync += done_valid.eq(0)
        with m.If(b_fire):
            with m.If(b_finals.r_data[0]):
                m.d.sync += [done_valid.eq(1), done_error.eq(error_now), failed.eq(0)]
            with m.Else():
                m.d.sync += failed.eq(error_now)
        return m
