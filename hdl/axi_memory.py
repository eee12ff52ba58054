"""A simulation-grade AXI4 slave memory: device memory inside the simulated design.

Benchmarks and long runs cannot afford a Python bus model that wakes up every clock cycle.
This memory lives in the RTL: it queues up to eight read and eight write bursts, starts each
read burst ``latency`` cycles after its AR and streams beats at one per cycle (bursts follow
each other back to back), accepts write beats at one per cycle with byte strobes, and answers
DECERR for bursts that touch addresses beyond its size. The host reaches its contents
through the simulator's access to the ``storage`` array (a backdoor, like loading a board's
DRAM before a run), see :class:`octet.sim.fast_device.FastVerilatorDevice`.

The storage is a small Verilog RAM model (:data:`RAM_VERILOG`, instantiated as ``ram``): an
Amaranth ``Memory`` of millions of words would make Yosys write and process an initial value
for every word. It is not for synthesis onto an FPGA (the bitstream flow uses block RAM behind
its own port), and it needs Verilator, not the Amaranth simulator.
Tested through ``tests/test_accelerator_rtl.py`` (the fast configuration runs the same
differential programs).
"""

from amaranth.hdl import ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In

from .axi import AxiResp, AxiSignature

__all__ = ["AxiMemory", "RAM_VERILOG"]

#: Verilog of the storage: one read port (registered, enable) and one byte-strobed write port.
RAM_VERILOG = """\
module octet_sim_ram #(parameter WORDS = 1024, parameter WIDTH = 64) (
    input clk,
    input [31:0] raddr, input ren, output reg [WIDTH-1:0] rdata,
    input [31:0] waddr, input [WIDTH/8-1:0] wen, input [WIDTH-1:0] wdata);
  reg [WIDTH-1:0] storage [0:WORDS-1];
  integer i;
  always @(posedge clk) begin
    if (ren) rdata <= storage[raddr];
    for (i = 0; i < WIDTH/8; i = i + 1)
      if (wen[i]) storage[waddr][i*8 +: 8] <= wdata[i*8 +: 8];
  end
endmodule
"""


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
        rd_addr, rd_en, rd_data = Signal(32), Signal(), Signal(self._width)
        wr_addr, wr_en, wr_data = Signal(32), Signal(B), Signal(self._width)
        m.submodules.ram = Instance(
            "octet_sim_ram", p_WORDS=self.words, p_WIDTH=self._width,
            i_clk=ClockSignal(), i_raddr=rd_addr, i_ren=rd_en, o_rdata=rd_data,
            i_waddr=wr_addr, i_wen=wr_en, i_wdata=wr_data)

        now = Signal(32)
        m.d.sync += now.eq(now + 1)

        # --- Reads: bursts queue up (as in a memory controller); each may start ``latency``
        # cycles after its AR, and beats of consecutive bursts follow back to back. ---
        ar_layout = data.StructLayout({"addr": 32, "len": 8, "bad": 1, "at": 32})
        m.submodules.ar_q = ar_q = fifo.SyncFIFOBuffered(width=ar_layout.size, depth=8)
        ar_in = data.View(ar_layout, ar_q.w_data)
        m.d.comb += [bus.arready.eq(ar_q.w_rdy), ar_q.w_en.eq(bus.arvalid & bus.arready),
                     ar_in.addr.eq(bus.araddr), ar_in.len.eq(bus.arlen),
                     ar_in.bad.eq(bus.araddr + ((bus.arlen + 1) << shift) > self._size),
                     ar_in.at.eq(now + self._latency - 1)]
        head = data.View(ar_layout, ar_q.r_data)
        r_active = Signal()
        r_addr = Signal(32)
        r_left = Signal(9)
        r_bad = Signal()
        r_data_valid = Signal()     # the RAM shows the beat addressed last cycle
        r_last = Signal()
        r_beat_bad = Signal()
        start_burst = ~r_active & ar_q.r_rdy & (now - head.at < (1 << 31))
        m.d.comb += ar_q.r_en.eq(start_burst)
        with m.If(start_burst):
            m.d.sync += [r_active.eq(1), r_addr.eq(head.addr), r_left.eq(head.len + 1),
                         r_bad.eq(head.bad)]
        issue = Signal()
        m.d.comb += issue.eq(r_active & (r_left != 0) & (~r_data_valid | bus.rready))
        m.d.comb += [rd_addr.eq(r_addr[shift:]), rd_en.eq(issue & ~r_bad)]
        with m.If(issue):
            m.d.sync += [r_addr.eq(r_addr + B), r_left.eq(r_left - 1), r_data_valid.eq(1),
                         r_last.eq(r_left == 1), r_beat_bad.eq(r_bad)]
            with m.If(r_left == 1):
                m.d.sync += r_active.eq(0)
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += r_data_valid.eq(0)
        m.d.comb += [bus.rvalid.eq(r_data_valid), bus.rdata.eq(rd_data), bus.rlast.eq(r_last),
                     bus.rresp.eq(AxiResp.OKAY), bus.rid.eq(0)]
        with m.If(r_beat_bad):
            m.d.comb += [bus.rresp.eq(AxiResp.DECERR), bus.rdata.eq(0)]

        # --- Writes: AW queues up; W beats go to the head burst; B after its last beat. ---
        aw_layout = data.StructLayout({"addr": 32, "bad": 1})
        m.submodules.aw_q = aw_q = fifo.SyncFIFOBuffered(width=aw_layout.size, depth=8)
        aw_in = data.View(aw_layout, aw_q.w_data)
        m.d.comb += [bus.awready.eq(aw_q.w_rdy), aw_q.w_en.eq(bus.awvalid & bus.awready),
                     aw_in.addr.eq(bus.awaddr),
                     aw_in.bad.eq(bus.awaddr + ((bus.awlen + 1) << shift) > self._size)]
        w_head = data.View(aw_layout, aw_q.r_data)
        w_active = Signal()
        w_addr = Signal(32)
        w_bad = Signal()
        m.submodules.b_q = b_q = fifo.SyncFIFOBuffered(width=1, depth=8)
        with m.If(~w_active & aw_q.r_rdy):
            m.d.comb += aw_q.r_en.eq(1)
            m.d.sync += [w_active.eq(1), w_addr.eq(w_head.addr), w_bad.eq(w_head.bad)]
        m.d.comb += bus.wready.eq(w_active & b_q.w_rdy)
        w_fire = bus.wvalid & bus.wready
        m.d.comb += [wr_addr.eq(w_addr[shift:]), wr_data.eq(bus.wdata)]
        with m.If(w_fire & ~w_bad):
            m.d.comb += wr_en.eq(bus.wstrb)
        with m.If(w_fire):
            m.d.sync += w_addr.eq(w_addr + B)
            with m.If(bus.wlast):
                m.d.sync += w_active.eq(0)
        m.d.comb += [b_q.w_en.eq(w_fire & bus.wlast), b_q.w_data.eq(w_bad),
                     bus.bvalid.eq(b_q.r_rdy), bus.bid.eq(0),
                     bus.bresp.eq(Mux(b_q.r_data[0], AxiResp.DECERR, AxiResp.OKAY)),
                     b_q.r_en.eq(bus.bready)]
        return m
