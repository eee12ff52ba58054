"""AXI4 read master: turns (address, length, tag) requests into a stream of data beats.

Each request is split into INCR bursts of at most 256 beats that never cross a 4 KiB boundary
(:class:`~octet.hdl.axi.BurstSplitter`). Bursts are issued on AR as fast as ARREADY allows,
up to ``max_outstanding`` of them in flight; a FIFO keeps each burst's tag and whether it ends
its request. All bursts use one ARID, so the slave returns them in order and the R channel can
be passed straight through to ``o_data``: RREADY is ``o_data.ready``, so a stalled consumer
stalls the bus and no beat is ever dropped or buffered here.

Tested by ``tests/test_axi_units.py`` (Amaranth simulator, a randomly stalling slave model
with error responses) and ``tests/test_axi_rtl.py`` (Verilator against cocotbext-axi's
``AxiRam``).
"""

from amaranth.hdl import Module
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import AxiBurst, AxiSignature, BurstSplitter

__all__ = ["AxiReader", "read_request_layout", "read_data_layout"]


def read_request_layout(addr_width=32, tag_width=2):
    """Payload of :attr:`AxiReader.i_req`."""
    return data.StructLayout({"addr": addr_width, "beats": 16, "tag": tag_width})


def read_data_layout(data_width=64, tag_width=2):
    """Payload of :attr:`AxiReader.o_data`."""
    return data.StructLayout({"data": data_width, "last": 1, "tag": tag_width, "error": 1})


def _check_outstanding(max_outstanding):
    if (not isinstance(max_outstanding, int) or isinstance(max_outstanding, bool) or
            not 1 <= max_outstanding <= 256):
        raise TypeError(f"Outstanding burst limit must be an integer from 1 to 256, "
                        f"not {max_outstanding!r}")


class AxiReader(wiring.Component):
    """AXI4 read master with burst splitting and in-order, fully backpressured data.

    Parameters
    ----------
    addr_width : int
        AXI address width, 12 to 64.
    data_width : int
        AXI data width in bits, a power of two from 8 to 1024.
    max_outstanding : int
        Bursts that may be in flight (issued on AR, last beat not yet received), 1 to 256.
    id_width : int
        Width of ARID / RID; every burst uses ARID 0.
    tag_width : int
        Width of the request tag copied to the data beats, 1 to 16.

    Ports
    -----
    i_req : In(stream.Signature(StructLayout{"addr": addr_width, "beats": 16, "tag": tag_width}))
        Read ``beats`` (>= 1) bus words from the bus-aligned byte address ``addr``.
    o_data : Out(stream.Signature(StructLayout{"data": data_width, "last": 1,
        "tag": tag_width, "error": 1}))
        The words of each request in request order; ``last`` on a request's final word,
        ``tag`` from its request, ``error`` when that beat's RRESP was SLVERR or DECERR.
    m_axi : Out(AxiSignature(addr_width, data_width, id_width, write=False))
        The AR and R channels.
    busy : Out(1)
        A request is being split or a burst is outstanding.
    beat : Out(1)
        An R beat was transferred this cycle.
    """

    def __init__(self, addr_width=32, data_width=64, max_outstanding=8, *, id_width=4,
                 tag_width=2):
        bus = AxiSignature(addr_width, data_width, id_width, write=False)  # checks widths
        _check_outstanding(max_outstanding)
        if (not isinstance(tag_width, int) or isinstance(tag_width, bool) or
                not 1 <= tag_width <= 16):
            raise TypeError(f"Tag width must be an integer from 1 to 16, not {tag_width!r}")
        self._addr_width = addr_width
        self._data_width = data_width
        self._max_outstanding = max_outstanding
        self._tag_width = tag_width
        super().__init__({
            "i_req": In(stream.Signature(read_request_layout(addr_width, tag_width))),
            "o_data": Out(stream.Signature(read_data_layout(data_width, tag_width))),
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
        m.submodules.splitter = splitter = BurstSplitter(
            self._addr_width, self._data_width, self._tag_width)
        wiring.connect(m, wiring.flipped(self.i_req), splitter.i_req)

        # Per-burst bookkeeping, pushed when AR is accepted and popped on RLAST. A first-word-
        # fall-through FIFO: its entry is readable in the cycle after the push, which is the
        # earliest an R beat can arrive.
        meta_layout = data.StructLayout({"tag": self._tag_width, "final": 1})
        m.submodules.meta = meta = fifo.SyncFIFO(width=meta_layout.size,
                                                 depth=self._max_outstanding)
        burst = splitter.o_burst
        pushed = data.View(meta_layout, meta.w_data)
        m.d.comb += [
            # The splitter holds valid and payload until ready, as AR requires; w_rdy only
            # falls after a push, i.e. after a handshake, so ARVALID never drops early.
            bus.arvalid.eq(burst.valid & meta.w_rdy),
            burst.ready.eq(bus.arready & meta.w_rdy),
            bus.araddr.eq(burst.payload.addr),
            bus.arlen.eq(burst.payload.len),
            bus.arsize.eq((self._data_width // 8).bit_length() - 1),
            bus.arburst.eq(AxiBurst.INCR),
            bus.arid.eq(0),
            meta.w_en.eq(burst.valid & burst.ready),
            pushed.tag.eq(burst.payload.tag),
            pushed.final.eq(burst.payload.final),
        ]

        head = data.View(meta_layout, meta.r_data)
        r_fire = bus.rvalid & bus.rready
        m.d.comb += [
            self.o_data.valid.eq(bus.rvalid & meta.r_rdy),
            bus.rready.eq(self.o_data.ready & meta.r_rdy),
            self.o_data.payload.data.eq(bus.rdata),
            self.o_data.payload.last.eq(bus.rlast & head.final),
            self.o_data.payload.tag.eq(head.tag),
            self.o_data.payload.error.eq(bus.rresp[1]),
            meta.r_en.eq(r_fire & bus.rlast),
            self.beat.eq(r_fire),
            self.busy.eq(splitter.busy | (meta.level != 0)),
        ]
        return m
