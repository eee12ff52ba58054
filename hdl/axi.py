"""AXI4 and AXI4-Lite signatures, the burst splitter both AXI masters share, and a helper that
puts a read-only and a write-only master on one AXI4 port.

Members are named as in the AMBA specification (``awaddr``, ``rready``, ...), so that an
Amaranth port ``m_axi: Out(AxiSignature())`` becomes ``m_axi__awaddr``, ``m_axi__rready``, ...
in the generated Verilog, which cocotbext-axi binds with ``bus_separator="__"`` (see
:mod:`octet.sim.axi_models`). Only the signals Octet drives are present: no
``lock``/``cache``/``prot``/``qos``/``region``/``user`` (cocotbext-axi treats them as optional and
an interconnect ties them to their defaults).

Tested through ``tests/test_axi_units.py`` and ``tests/test_axi_rtl.py``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiSignature", "AxiLiteSignature", "AxiResp", "AxiBurst", "BurstSplitter",
           "connect_read_write", "MAX_BURST_BEATS", "PAGE_BYTES"]

#: AXI4 INCR bursts carry at most 256 beats (AxLEN is 8 bits) ...
MAX_BURST_BEATS = 256
#: ... and must not cross a 4 KiB boundary.
PAGE_BYTES = 4096


class AxiResp:
    """RRESP / BRESP codes. Bit 1 set means the transfer failed (SLVERR or DECERR)."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class AxiBurst:
    """AWBURST / ARBURST codes."""
    FIXED = 0
    INCR = 1
    WRAP = 2


def _check_width(what, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise TypeError(f"AXI {what} must be an integer from {low} to {high}, not {value!r}")


def _check_data_width(data_width, high):
    _check_width("data width", data_width, 8, high)
    if data_width & (data_width - 1):
        raise ValueError(f"AXI data width must be a power of two, not {data_width}")


class AxiSignature(wiring.Signature):
    """Full AXI4 master interface (members as seen from the master).

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr`` / ``araddr``, 12 to 64 (at least one 4 KiB page).
    data_width : int
        Width of ``wdata`` / ``rdata``: a power of two from 8 to 1024.
    id_width : int
        Width of ``awid`` / ``bid`` / ``arid`` / ``rid``, 1 to 16.
    read : bool
        Include the read channels (AR, R).
    write : bool
        Include the write channels (AW, W, B).

    Members
    -------
    aw : ``awid, awaddr, awlen(8), awsize(3), awburst(2), awvalid`` Out, ``awready`` In.
    w : ``wdata, wstrb(data_width/8), wlast, wvalid`` Out, ``wready`` In.
    b : ``bid, bresp(2), bvalid`` In, ``bready`` Out.
    ar : ``arid, araddr, arlen(8), arsize(3), arburst(2), arvalid`` Out, ``arready`` In.
    r : ``rid, rdata, rresp(2), rlast, rvalid`` In, ``rready`` Out.
    """

    def __init__(self, addr_width=32, data_width=64, id_width=4, *, read=True, write=True):
        _check_width("address width", addr_width, 12, 64)
        _check_data_width(data_width, 1024)
        _check_width("ID width", id_width, 1, 16)
        if not (read or write):
            raise ValueError("AXI signature needs at least one of read and write channels")
        self._addr_width = addr_width
        self._data_width = data_width
        self._id_width = id_width
        self._read = bool(read)
        self._write = bool(write)
        members = {}
        if write:
            members.update({
                "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8),
                "awsize": Out(3), "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
                "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
                "wvalid": Out(1), "wready": In(1),
                "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            })
        if read:
            members.update({
                "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8),
                "arsize": Out(3), "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
                "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
                "rvalid": In(1), "rready": Out(1),
            })
        super().__init__(members)

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    @property
    def id_width(self):
        return self._id_width

    @property
    def read(self):
        return self._read

    @property
    def write(self):
        return self._write

    def __eq__(self, other):
        return (type(other) is type(self) and
                (self._addr_width, self._data_width, self._id_width, self._read, self._write) ==
                (other._addr_width, other._data_width, other._id_width, other._read, other._write))

    def __hash__(self):
        return hash((self._addr_width, self._data_width, self._id_width, self._read,
                     self._write))

    def __repr__(self):
        parts = f"{self._addr_width}, {self._data_width}, {self._id_width}"
        if not (self._read and self._write):
            parts += f", read={self._read}, write={self._write}"
        return f"AxiSignature({parts})"


class AxiLiteSignature(wiring.Signature):
    """AXI4-Lite interface (members as seen from the master; a slave uses ``In(...)``).

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr`` / ``araddr``, 3 to 64.
    data_width : int
        32 or 64.

    Members
    -------
    ``awaddr, awvalid`` Out, ``awready`` In; ``wdata, wstrb, wvalid`` Out, ``wready`` In;
    ``bresp, bvalid`` In, ``bready`` Out; ``araddr, arvalid`` Out, ``arready`` In;
    ``rdata, rresp, rvalid`` In, ``rready`` Out.
    """

    def __init__(self, addr_width=8, data_width=32):
        _check_width("address width", addr_width, 3, 64)
        if data_width not in (32, 64):
            raise ValueError(f"AXI-Lite data width must be 32 or 64, not {data_width!r}")
        self._addr_width = addr_width
        self._data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    def __eq__(self, other):
        return (type(other) is type(self) and
                (self._addr_width, self._data_width) == (other._addr_width, other._data_width))

    def __hash__(self):
        return hash((self._addr_width, self._data_width))

    def __repr__(self):
        return f"AxiLiteSignature({self._addr_width}, {self._data_width})"


def _forward(m, port, master, names):
    for name in names:
        flow = master.signature.members[name].flow
        ours, theirs = getattr(port, name), getattr(master, name)
        if flow == Out:
            m.d.comb += ours.eq(theirs)
        else:
            m.d.comb += theirs.eq(ours)


def connect_read_write(m, port, read, write):
    """Drive one full AXI4 master port from a read-only and a write-only master.

    AXI's read and write channels are independent, so no arbitration is needed: AR/R go to
    ``read`` and AW/W/B to ``write``.

    Parameters
    ----------
    m : Module
    port : interface with an :class:`AxiSignature` (both channel groups), as seen from the
        component that owns it (e.g. ``self.m_axi`` for ``m_axi: Out(AxiSignature(...))``).
    read, write : interfaces with master-side signatures holding the read / write channels
        (e.g. ``AxiReader().m_axi`` and ``AxiWriter().m_axi``).
    """
    members = port.signature.members
    _forward(m, port, read, [n for n in members if n.startswith(("ar", "r"))])
    _forward(m, port, write, [n for n in members if n.startswith(("aw", "w", "b"))])


class BurstSplitter(wiring.Component):
    """Splits a transfer request into legal AXI4 INCR bursts.

    A request of ``beats`` bus-width beats from the bus-aligned byte address ``addr`` becomes
    bursts of at most 256 beats that never cross a 4 KiB boundary, one per ``o_burst``
    transfer. ``o_burst``'s valid and whole payload come from registers (a burst is worked
    out one cycle before it is offered), so it can drive an AXI address channel directly
    (AXI requires AxVALID and the payload to hold until AxREADY) and nothing behind the port
    depends on the splitting arithmetic in the same cycle. One burst per cycle at most.

    Parameters
    ----------
    addr_width : int
        Address width.
    data_width : int
        Bus width in bits (a power of two, 8 to 1024).
    tag_width : int
        Width of a ``tag`` copied from each request to its bursts (0: no tag field).

    Ports
    -----
    i_req : In(stream.Signature(StructLayout{"addr": addr_width, "beats": 16[, "tag"]}))
        Requests; ``beats`` must be at least 1 and ``addr`` a multiple of the bus width.
    o_burst : Out(stream.Signature(StructLayout{"addr": addr_width, "len": 8, "final": 1
        [, "tag"]}))
        Bursts in order; ``len`` is AxLEN (beats - 1), ``final`` marks a request's last burst.
    busy : Out(1)
        A request is being split or a burst waits on ``o_burst``.
    """

    def __init__(self, addr_width=32, data_width=64, tag_width=0):
        _check_width("address width", addr_width, 12, 64)
        _check_data_width(data_width, 1024)
        _check_width("tag width", tag_width, 0, 16)
        self._data_width = data_width
        self._tag_width = tag_width
        tag = {"tag": tag_width} if tag_width else {}
        super().__init__({
            "i_req": In(stream.Signature(data.StructLayout(
                {"addr": addr_width, "beats": 16, **tag}))),
            "o_burst": Out(stream.Signature(data.StructLayout(
                {"addr": addr_width, "len": 8, "final": 1, **tag}))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        shift = (self._data_width // 8).bit_length() - 1
        page_bits = 12 - shift                # beat index within a 4 KiB page
        len_bits = min(page_bits, 8)

        req = Signal.like(self.i_req.payload)
        active = Signal()
        # The beats one burst may take from req.addr, less one: to the end of its page
        # (the page offset inverted), at most 256. Only logic, no adder.
        ahead = ~req.addr[shift:12]
        cap_m1 = Signal(len_bits)
        if page_bits > 8:
            m.d.comb += cap_m1.eq(ahead[:8] | ahead[8:].any().replicate(8))
        else:
            m.d.comb += cap_m1.eq(ahead)
        # The beats still to split are kept less one (left_m1). left_m1 - cap_m1 - 1 in 17
        # bits (cap_m1 added as its complement): one carry chain gives both what is left
        # after this burst (less one) and, in its top bit, whether this burst is the last.
        left_m1 = Signal(16)
        rest = Signal(17)
        m.d.comb += rest.eq(left_m1 + Cat(~cap_m1, Const(-1, 17 - len_bits)))
        final = Signal()
        m.d.comb += final.eq(rest[16])

        # The output is a register stage, loaded from req when empty or being taken.
        out_valid = Signal()
        out = Signal.like(self.o_burst.payload)
        m.d.comb += [
            self.i_req.ready.eq(~active),
            self.busy.eq(active | out_valid),
            self.o_burst.valid.eq(out_valid),
            self.o_burst.payload.eq(out),
        ]

        with m.If(self.i_req.valid & self.i_req.ready):
            m.d.sync += [req.eq(self.i_req.payload), left_m1.eq(self.i_req.payload.beats - 1),
                         active.eq(1)]
        with m.If(~out_valid | self.o_burst.ready):
            m.d.sync += out_valid.eq(active)
            with m.If(active):
                m.d.sync += [out.addr.eq(req.addr), out.final.eq(final),
                             out.len.eq(Mux(final, left_m1, cap_m1))]
                if self._tag_width:
                    m.d.sync += out.tag.eq(req.tag)
                # Past the burst: req.addr + (cap_m1 + 1) beats, left_m1 - cap_m1 - 1
                # (only used when the request goes on).
                step = Cat(Const(1, 1), cap_m1)
                m.d.sync += [
                    req.addr[shift:].eq((Cat(Const(1, 1), req.addr[shift:]) + step)[1:]),
                    left_m1.eq(rest[:16]),
                ]
                with m.If(final):
                    m.d.sync += active.eq(0)
        return m
