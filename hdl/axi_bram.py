"""Device memory in block RAM: an AXI4 slave on a ``lib.memory.Memory`` (synthesizable).

The on-chip memory of :class:`~octet.hdl.soc.Soc`. One read burst and one write burst are in
progress at a time (the address channels wait meanwhile); read beats stream at one per cycle
from the RAM's registered read port through a four-beat queue, write beats are taken at
one per cycle with byte strobes and written a cycle later, from registers. Each burst waits
one cycle after its address for a pipelined range check.
INCR bursts only (the only kind Octet's masters issue). A burst that touches bytes beyond the
memory answers DECERR and neither reads nor writes the RAM.

Unlike :class:`~octet.hdl.axi_memory.AxiMemory` (a simulation model with a Verilog RAM and a
configurable latency), this is plain Amaranth that Yosys maps to block RAM (ECP5 DP16KD).

Tested by ``tests/test_axi_bram.py``, ``tests/test_uart_bridge.py`` (behind the bridge) and
``tests/test_soc_uart.py`` (Verilator, the accelerator running programs from it).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In

from .axi import AxiResp, AxiSignature
from .head_queue import HeadQueue

__all__ = ["AxiBram"]

#: Read beats the memory buffers ahead of the master's RREADY (enough for one per cycle).
_READ_QUEUE = 4


class AxiBram(wiring.Component):
    """AXI4 slave memory of ``size_bytes`` in block RAM, initially zero.

    Parameters
    ----------
    size_bytes : int
        Bytes of memory: a positive multiple of the bus width.
    data_width : int
        Bus width in bits (32, 64 or 128).

    Ports
    -----
    s_axi : In(AxiSignature(32, data_width, 4))
        The slave port.
    """

    def __init__(self, size_bytes, data_width=64):
        if data_width not in (32, 64, 128):
            raise TypeError(f"AXI BRAM data width must be 32, 64 or 128, not {data_width!r}")
        bus_bytes = data_width // 8
        if not isinstance(size_bytes, int) or size_bytes <= 0 or size_bytes % bus_bytes:
            raise TypeError(f"AXI BRAM size must be a positive multiple of {bus_bytes} bytes, "
                            f"not {size_bytes!r}")
        self._size = size_bytes
        self._width = data_width
        #: The storage, one bus word per row (simulators reach it through ``ram.data``).
        self.ram = memory.Memory(shape=data_width, depth=size_bytes // bus_bytes, init=[])
        super().__init__({"s_axi": In(AxiSignature(32, data_width, 4))})

    @property
    def size_bytes(self):
        return self._size

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        B = self._width // 8
        shift = (B - 1).bit_length()
        words = self._size // B
        m.submodules.ram = ram = self.ram
        rp = ram.read_port()
        wp = ram.write_port(granularity=8)

        def end_of(addr, length):
            return addr + ((length + 1) << shift)

        # Reads. The range check is split over the AR cycle (the burst's end address) and the
        # next (the comparison), so it starts from registers; the first beat waits for it.
        # The RAM's read port is always enabled (an enable would fan out to every block RAM
        # of the memory, spread over the chip): a beat is read when there is room for it in
        # a small queue, and a stalled master stalls only the queue.
        r_active = Signal()
        r_addr = Signal(range(words))
        r_left = Signal(9)
        r_end = Signal(34)
        r_check = Signal()          # the range check is under way
        r_bad = Signal()
        r_valid = Signal()          # rp.data holds the beat addressed in the previous cycle
        r_last = Signal()
        beat_bad = Signal()         # (that beat's response; r_bad may belong to a new burst)
        beat_layout = data.StructLayout({"data": self._width, "last": 1, "bad": 1})
        # (A HeadQueue: a beat is read only with room for it, so the queue's write is not
        # gated by a "not full" flag.)
        m.submodules.r_queue = r_queue = HeadQueue(beat_layout.size, _READ_QUEUE)
        m.d.comb += bus.arready.eq(~r_active)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [r_active.eq(1), r_addr.eq(bus.araddr[shift:]), r_left.eq(bus.arlen + 1),
                         r_end.eq(end_of(bus.araddr, bus.arlen)), r_check.eq(1)]
        with m.If(r_check):
            m.d.sync += [r_check.eq(0), r_bad.eq(r_end > self._size)]
        # Room for this beat and for the one read in the previous cycle, which enters the
        # queue in this cycle.
        issue = Signal()
        m.d.comb += issue.eq(r_active & ~r_check & (r_left != 0) &
                             (r_queue.level + r_valid < _READ_QUEUE))
        m.d.comb += rp.addr.eq(r_addr)
        m.d.sync += r_valid.eq(issue)
        with m.If(issue):
            m.d.sync += [r_addr.eq(r_addr + 1), r_left.eq(r_left - 1),
                         r_last.eq(r_left == 1), beat_bad.eq(r_bad)]
            with m.If(r_left == 1):
                m.d.sync += r_active.eq(0)
        beat_in = Signal(beat_layout)
        beat_out = Signal(beat_layout)
        m.d.comb += [beat_in.data.eq(Mux(beat_bad, 0, rp.data)), beat_in.last.eq(r_last),
                     beat_in.bad.eq(beat_bad),
                     r_queue.w_data.eq(beat_in), r_queue.w_en.eq(r_valid),
                     beat_out.eq(r_queue.r_data)]
        m.d.comb += [bus.rvalid.eq(r_queue.r_rdy), bus.rlast.eq(beat_out.last), bus.rid.eq(0),
                     bus.rdata.eq(beat_out.data),
                     bus.rresp.eq(Mux(beat_out.bad, AxiResp.DECERR, AxiResp.OKAY)),
                     r_queue.r_en.eq(bus.rready)]

        # Writes (the same range check before WREADY).
        w_active = Signal()
        w_addr = Signal(range(words))
        w_end = Signal(34)
        w_check = Signal()
        w_bad = Signal()
        b_pending = Signal()
        b_bad = Signal()
        m.d.comb += bus.awready.eq(~w_active & ~b_pending)
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [w_active.eq(1), w_addr.eq(bus.awaddr[shift:]),
                         w_end.eq(end_of(bus.awaddr, bus.awlen)), w_check.eq(1)]
        with m.If(w_check):
            m.d.sync += [w_check.eq(0), w_bad.eq(w_end > self._size)]
        m.d.comb += bus.wready.eq(w_active & ~w_check)
        w_fire = bus.wvalid & bus.wready
        # A beat is written one cycle after it is taken, from registers: the bus's write data
        # (the arbiter's multiplexer of the masters) ends in a flip-flop here instead of
        # running on to every block RAM of the memory, which are spread over the chip. The
        # response comes a cycle after the last beat and a read burst's first beat is read
        # two cycles after its address at the earliest, so reads see every acknowledged write.
        wq_en = Signal(B)
        wq_addr = Signal(range(words))
        wq_data = Signal(self._width)
        m.d.sync += [wq_en.eq(Mux(w_fire & ~w_bad, bus.wstrb, 0)), wq_addr.eq(w_addr),
                     wq_data.eq(bus.wdata)]
        m.d.comb += [wp.addr.eq(wq_addr), wp.data.eq(wq_data), wp.en.eq(wq_en)]
        with m.If(w_fire):
            m.d.sync += w_addr.eq(w_addr + 1)
            with m.If(bus.wlast):
                m.d.sync += [w_active.eq(0), b_pending.eq(1), b_bad.eq(w_bad)]
        m.d.comb += [bus.bvalid.eq(b_pending), bus.bid.eq(0),
                     bus.bresp.eq(AxiResp.OKAY)]
        with m.If(b_bad):
            m.d.comb += bus.bresp.eq(AxiResp.DECERR)
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += b_pending.eq(0)
        return m
