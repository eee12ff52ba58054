"""A simulation-grade AXI4 slave memory: device memory inside the simulated design.

Benchmarks and long runs cannot afford a Python bus model that wakes up every clock cycle.
This memory lives in the RTL: it takes one AR and one AW burst at a time each, streams read
beats at one per cycle after ``latency`` cycles, accepts write beats at one per cycle with byte
strobes, and answers DECERR for bursts that touch addresses beyond its size. The host reaches
its contents through the simulator's access to the ``storage`` array (a backdoor, like loading
a board's DRAM before a run), see :class:`octet.sim.fast_device.FastVerilatorDevice`.

It is not for synthesis onto an FPGA (the bitstream flow uses block RAM behind its own port).
Tested through ``tests/test_accelerator_rtl.py`` (the fast configuration runs the same
differential programs).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from .axi import AxiResp, AxiSignature

__all__ = ["AxiMemory"]


class AxiMemory(wiring.Component):
    """AXI4 slave backed by a ``lib.memory.Memory`` of ``size_bytes``.

    Parameters
    ----------
    size_bytes : int
        Bytes of memory (a multiple of the bus width).
    data_width : int
        Bus width in bits.
    latency : int
        Cycles from an accepted AR to its first R beat (at least 1).

    Ports
    -----
    s_axi : In(AxiSignature(32, data_width, 4))
        The slave port (connect to the accelerator's ``m_axi``).
    """

    def __init__(self, size_bytes, data_width=64, latency=4):
        bus_bytes = data_width // 8
        if size_bytes % bus_bytes or size_bytes <= 0:
            raise ValueError(f"memory size {size_bytes} is not a positive multiple of "
                             f"{bus_bytes} bytes")
        if not isinstance(latency, int) or latency < 1:
            raise ValueError(f"memory latency must be a positive integer, not {latency!r}")
        self._size = size_bytes
        self._width = data_width
        self._latency = latency
        super().__init__({"s_axi": In(AxiSignature(32, data_width, 4))})

    @property
    def words(self):
        return self._size // (self._width // 8)

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        B = self._width // 8
        shift = (B - 1).bit_length()
        m.submodules.storage = storage = memory.Memory(
            shape=self._width, depth=self.words, init=[])
        rd = storage.read_port()
        wr = storage.write_port(granularity=8)

        # --- Reads: one burst at a time, beats back to back after a fixed latency. ---
        r_active = Signal()
        r_addr = Signal(32)
        r_left = Signal(9)
        r_wait = Signal(range(self._latency + 1))
        r_bad = Signal()
        r_data_valid = Signal()     # the read port shows the beat addressed last cycle
        r_last = Signal()
        m.d.comb += bus.arready.eq(~r_active)
        with m.If(bus.arvalid & bus.arready):
            end = bus.araddr + ((bus.arlen + 1) << shift)
            m.d.sync += [r_active.eq(1), r_addr.eq(bus.araddr), r_left.eq(bus.arlen + 1),
                         r_wait.eq(self._latency - 1), r_bad.eq(end > self._size)]
        # Issue a word read whenever the R channel will be able to take it.
        issue = Signal()
        m.d.comb += issue.eq(r_active & (r_wait == 0) & (r_left != 0) &
                             (~r_data_valid | bus.rready))
        m.d.comb += [rd.addr.eq(r_addr[shift:]), rd.en.eq(issue)]
        with m.If(r_active & (r_wait != 0)):
            m.d.sync += r_wait.eq(r_wait - 1)
        with m.If(issue):
            m.d.sync += [r_addr.eq(r_addr + B), r_left.eq(r_left - 1),
                         r_data_valid.eq(1), r_last.eq(r_left == 1)]
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += r_data_valid.eq(0)
        with m.If(bus.rvalid & bus.rready & bus.rlast):
            m.d.sync += r_active.eq(0)
        m.d.comb += [bus.rvalid.eq(r_data_valid), bus.rdata.eq(rd.data), bus.rlast.eq(r_last),
                     bus.rresp.eq(AxiResp.OKAY), bus.rid.eq(0)]
        with m.If(r_bad):
            m.d.comb += [bus.rresp.eq(AxiResp.DECERR), bus.rdata.eq(0)]

        # --- Writes: one burst at a time; B after the last beat. ---
        w_active = Signal()
        w_addr = Signal(32)
        w_bad = Signal()
        b_pending = Signal()
        m.d.comb += bus.awready.eq(~w_active & ~b_pending)
        with m.If(bus.awvalid & bus.awready):
            end = bus.awaddr + ((bus.awlen + 1) << shift)
            m.d.sync += [w_active.eq(1), w_addr.eq(bus.awaddr), w_bad.eq(end > self._size)]
        m.d.comb += bus.wready.eq(w_active)
        w_fire = bus.wvalid & bus.wready
        m.d.comb += [wr.addr.eq(w_addr[shift:]), wr.data.eq(bus.wdata)]
        with m.If(w_fire & ~w_bad):
            m.d.comb += wr.en.eq(bus.wstrb)
        with m.If(w_fire):
            m.d.sync += w_addr.eq(w_addr + B)
            with m.If(bus.wlast):
                m.d.sync += [w_active.eq(0), b_pending.eq(1)]
        m.d.comb += [bus.bvalid.eq(b_pending), bus.bid.eq(0),
                     bus.bresp.eq(AxiResp.OKAY)]
        with m.If(w_bad):
            m.d.comb += bus.bresp.eq(AxiResp.DECERR)
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += [b_pending.eq(0), w_bad.eq(0)]
        return m
