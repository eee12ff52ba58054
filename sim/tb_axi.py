"""cocotb tests of AxiReader, AxiWriter and CsrBank in Verilator, against cocotbext-axi.

Reference: cocotbext-axi's ``AxiRam`` (which itself asserts the 4 KiB rule and WLAST
placement) with random pauses on all five channels, and its ``AxiLiteMaster``. Read data is
compared with the bytes put into the RAM, written data with a bytearray updated by the same
strobes, issued bursts with :func:`octet.sim.axi_models.split_bursts`, and CSR accesses with
the access table of :mod:`octet.hdl.axil_csr`. The design is :class:`AxiTestTop`, built and
run by ``tests/test_axi_rtl.py``; ``OCTET_SEED`` varies the random data.
"""

import os
import random

import cocotb
from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiSlave, MemoryRegion

from octet.hdl.axi import AxiLiteSignature, AxiSignature, connect_read_write
from octet.hdl.axi_reader import AxiReader, read_data_layout, read_request_layout
from octet.hdl.axi_writer import AxiWriter, write_data_layout, write_request_layout
from octet.hdl.axil_csr import CsrBank

from .axi_models import (
    attach_axi_ram,
    attach_axil_master,
    axi_bus,
    random_pauses,
    reset,
    split_bursts,
)
from .cocotb_streams import StreamSink, StreamSource, random_pause

IDENT = 0x0C7E_A41B
SCRATCH_RESET = 0x1234_5678
#: The cycle counter starts just below a low-word wrap, so reads straddle one.
CYCLES_INIT = 0x0000_0007_FFFF_FE00
CSR_MAP = [("ident", 0x00, "ro"), ("scratch", 0x04, "rw", SCRATCH_RESET), ("ctrl", 0x08, "wo"),
           ("last_ctrl", 0x0C, "ro"), ("irq", 0x10, "w1c"), ("cycles_lo", 0x18, "ro"),
           ("cycles_hi", 0x1C, "ro")]
BUS_BYTES = 8


class AxiTestTop(wiring.Component):
    """AxiReader and AxiWriter sharing ``m_axi``; a CsrBank on ``s_axil`` with a tiny design.

    The design behind the registers: ``ctrl`` writes are kept in ``last_ctrl``; ``irq`` bits
    are set by ``irq_set`` and cleared by writing ones; ``cycles_lo``/``cycles_hi`` show a
    64-bit cycle counter whose high word is latched when the low word is read.
    """

    def __init__(self):
        super().__init__({
            "m_axi": Out(AxiSignature(32, 8 * BUS_BYTES, 4)),
            "rd_req": In(stream.Signature(read_request_layout(32))),
            "rd_data": Out(stream.Signature(read_data_layout(8 * BUS_BYTES))),
            "wr_req": In(stream.Signature(write_request_layout(32))),
            "wr_data": In(stream.Signature(write_data_layout(8 * BUS_BYTES))),
            "wr_done": Out(stream.Signature(data.StructLayout({"error": 1}))),
            "rd_beat": Out(1), "rd_busy": Out(1), "wr_beat": Out(1), "wr_busy": Out(1),
            "s_axil": In(AxiLiteSignature(8, 32)),
            "irq_set": In(4),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = reader = AxiReader(32, 8 * BUS_BYTES, max_outstanding=4)
        m.submodules.writer = writer = AxiWriter(32, 8 * BUS_BYTES, max_outstanding=4)
        connect_read_write(m, self.m_axi, reader.m_axi, writer.m_axi)
        wiring.connect(m, wiring.flipped(self.rd_req), reader.i_req)
        wiring.connect(m, wiring.flipped(self.rd_data), reader.o_data)
        wiring.connect(m, wiring.flipped(self.wr_req), writer.i_req)
        wiring.connect(m, wiring.flipped(self.wr_data), writer.i_data)
        wiring.connect(m, wiring.flipped(self.wr_done), writer.o_done)
        m.d.comb += [self.rd_beat.eq(reader.beat), self.rd_busy.eq(reader.busy),
                     self.wr_beat.eq(writer.beat), self.wr_busy.eq(writer.busy)]

        m.submodules.csr = csr = CsrBank(CSR_MAP)
        wiring.connect(m, wiring.flipped(self.s_axil), csr.bus)
        last_ctrl, pending = Signal(32), Signal(4)
        cycles, cycles_hi = Signal(64, init=CYCLES_INIT), Signal(32)
        m.d.sync += cycles.eq(cycles + 1)
        with m.If(csr.ctrl_w_stb):
            m.d.sync += last_ctrl.eq(csr.ctrl_w_data)
        m.d.sync += pending.eq(pending & ~(csr.irq_w_data[:4] & csr.irq_w_stb.replicate(4)) |
                               self.irq_set)
        with m.If(csr.cycles_lo_r_stb):
            m.d.sync += cycles_hi.eq(cycles[32:])
        m.d.comb += [csr.ident_r_data.eq(IDENT), csr.last_ctrl_r_data.eq(last_ctrl),
                     csr.irq_r_data.eq(pending), csr.cycles_lo_r_data.eq(cycles[:32]),
                     csr.cycles_hi_r_data.eq(cycles_hi)]
        return m


def _rng(salt):
    return random.Random(int(os.environ.get("OCTET_SEED", "1")) * 1000 + salt)


class Bench:
    """Clock, reset, the AXI RAM and the stream endpoints of :class:`AxiTestTop`."""

    def __init__(self, dut, rng, pause=0.3, ram=True):
        self.dut, self.rng = dut, rng
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        if ram:
            self.ram = attach_axi_ram(dut, "m_axi", size=1 << 16, pause=pause, rng=rng)
        stall = lambda: random_pause(rng, pause)  # noqa: E731 - one pauser per stream
        self.rd_req = StreamSource(dut, "rd_req", read_request_layout(32), stall())
        self.rd_data = StreamSink(dut, "rd_data", read_data_layout(8 * BUS_BYTES), stall())
        self.wr_req = StreamSource(dut, "wr_req", write_request_layout(32), stall())
        self.wr_data = StreamSource(dut, "wr_data", write_data_layout(8 * BUS_BYTES), stall())
        self.wr_done = StreamSink(dut, "wr_done", data.StructLayout({"error": 1}), stall())
        self.dut.irq_set.value = 0
        self.bursts = {"ar": [], "aw": []}
        self.beats = {"rd": 0, "wr": 0}
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        """Log accepted AR/AW bursts and count the beat outputs."""
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            for ch in ("ar", "aw"):
                valid, ready, addr, length = (getattr(d, f"m_axi__{ch}{name}")
                                              for name in ("valid", "ready", "addr", "len"))
                if valid.value and ready.value:
                    self.bursts[ch].append((int(addr.value), int(length.value) + 1))
            self.beats["rd"] += int(d.rd_beat.value)
            self.beats["wr"] += int(d.wr_beat.value)

    def random_requests(self, count, max_beats, region=(0, 0x8000)):
        """Bus-aligned (address, beats) pairs inside ``region``, always including a page
        crossing and a request of more than 256 beats."""
        lo, hi = region
        fixed = [(lo + 0x1000 - 3 * BUS_BYTES, 9), (lo + 0x1000 + 40 * BUS_BYTES, 300)]
        out = fixed[:count]
        while len(out) < count:
            beats = self.rng.randint(1, max_beats)
            addr = self.rng.randrange(lo, hi - beats * BUS_BYTES, BUS_BYTES)
            out.append((addr, beats))
        return out


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def read_random(dut):
    """Random reads (page crossings, > 256 beats, tags) with pauses everywhere."""
    rng = _rng(1)
    bench = Bench(dut, rng)
    await reset(dut)
    content = rng.randbytes(1 << 16)
    bench.ram.write(0, content)
    requests = bench.random_requests(20, 300)
    for i, (addr, beats) in enumerate(requests):
        bench.rd_req.send({"addr": addr, "beats": beats, "tag": i % 4})
    for i, (addr, beats) in enumerate(requests):
        for n in range(beats):
            beat = await bench.rd_data.recv()
            at = addr + n * BUS_BYTES
            expect = int.from_bytes(content[at:at + BUS_BYTES], "little")
            assert beat["data"] == expect, f"request {i} beat {n}: data"
            assert (beat["last"], beat["tag"], beat["error"]) == (int(n == beats - 1), i % 4, 0)
    await ClockCycles(dut.clk, 4)
    assert not dut.rd_busy.value
    assert bench.bursts["ar"] == [b for a, n in requests for b in split_bursts(a, n, BUS_BYTES)]
    assert bench.beats["rd"] == sum(n for _, n in requests)


async def _write(bench, requests, expect):
    """Send write requests with random data and strobes, applying them to ``expect``."""
    for addr, beats in requests:
        bench.wr_req.send({"addr": addr, "beats": beats})
        for n in range(beats):
            data = bench.rng.getrandbits(8 * BUS_BYTES)
            strb = bench.rng.getrandbits(BUS_BYTES)
            bench.wr_data.send({"data": data, "strb": strb})
            for lane in range(BUS_BYTES):
                if strb >> lane & 1:
                    expect[addr + n * BUS_BYTES + lane] = data >> (8 * lane) & 0xFF
    for _ in requests:
        assert (await bench.wr_done.recv())["error"] == 0


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def write_random(dut):
    """Random writes with random strobes; the RAM must end up as the reference bytearray."""
    rng = _rng(2)
    bench = Bench(dut, rng)
    await reset(dut)
    expect = bytearray(rng.randbytes(1 << 16))
    bench.ram.write(0, bytes(expect))
    requests = bench.random_requests(20, 300)
    await _write(bench, requests, expect)
    await ClockCycles(dut.clk, 4)
    assert not dut.wr_busy.value
    assert bench.ram.read(0, 1 << 16) == bytes(expect)
    assert bench.bursts["aw"] == [b for a, n in requests for b in split_bursts(a, n, BUS_BYTES)]
    assert bench.beats["wr"] == sum(n for _, n in requests)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def read_and_write_together(dut):
    """Reads of one region while writing another, both masters busy on the bus at once."""
    rng = _rng(3)
    bench = Bench(dut, rng, pause=0.2)
    await reset(dut)
    expect = bytearray(rng.randbytes(1 << 16))
    bench.ram.write(0, bytes(expect))
    reads = bench.random_requests(10, 200, region=(0, 0x8000))
    writes = bench.random_requests(10, 200, region=(0x8000, 0x10000))
    snapshot = bytes(expect)
    writer = cocotb.start_soon(_write(bench, writes, expect))
    for addr, beats in reads:
        bench.rd_req.send({"addr": addr, "beats": beats, "tag": 3})
    for addr, beats in reads:
        for n in range(beats):
            at = addr + n * BUS_BYTES
            assert (await bench.rd_data.recv())["data"] == int.from_bytes(
                snapshot[at:at + BUS_BYTES], "little")
    await writer
    assert bench.ram.read(0, 1 << 16) == bytes(expect)


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def bus_errors(dut):
    """SLVERR from a slave whose memory ends at 0x8000: flagged per read beat, per write."""
    rng = _rng(5)
    bench = Bench(dut, rng, ram=False)
    memory = MemoryRegion(0x8000)
    slave = AxiSlave(axi_bus(dut), dut.clk, dut.rst, target=memory)
    random_pauses(slave, rng, 0.3)
    await reset(dut)
    content = rng.randbytes(0x8000)
    await memory.write(0, content)
    bench.rd_req.send({"addr": 0x7FF0, "beats": 4, "tag": 1})
    bench.rd_req.send({"addr": 0x0100, "beats": 2, "tag": 2})
    for n, at in enumerate([0x7FF0, 0x7FF8, 0x8000, 0x8008, 0x100, 0x108]):
        beat = await bench.rd_data.recv()
        assert beat["error"] == (at >= 0x8000), f"read beat {n} at {at:#x}: error flag"
        if at < 0x8000:
            assert beat["data"] == int.from_bytes(content[at:at + BUS_BYTES], "little")
    for addr, beats, error in [(0x7FF8, 2, 1), (0x0200, 3, 0), (0x9000, 1, 1), (0x0, 1, 0)]:
        bench.wr_req.send({"addr": addr, "beats": beats})
        for _ in range(beats):
            bench.wr_data.send({"data": 0, "strb": 0xFF})
        assert (await bench.wr_done.recv())["error"] == error, f"write at {addr:#x}"


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def csr_bank(dut):
    """CSR access modes, strobes, SLVERR, W1C and the latched 64-bit counter."""
    rng = _rng(4)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.irq_set.value = 0
    master = attach_axil_master(dut, "s_axil")
    await reset(dut)

    async def read(addr):
        resp = await master.read(addr, 4)
        return int.from_bytes(resp.data, "little"), int(resp.resp)

    async def write(addr, data):
        return int((await master.write(addr, data)).resp)

    # First (the counter starts 512 cycles before its low word wraps, and these reads must
    # straddle the wrap): low-then-high reads give a consistent, increasing 64-bit value.
    values = []
    while not values or values[-1] < (1 << 35) + 64:
        lo, _ = await read(0x18)
        hi, _ = await read(0x1C)
        values.append(hi << 32 | lo)
        assert len(values) < 50, "the counter never reached its low word's wrap"
        await ClockCycles(dut.clk, rng.randrange(5, 40))
    assert values == sorted(values) and values[0] >= CYCLES_INIT
    assert values[0] < 1 << 35, "the first read was already past the wrap"
    assert all(b - a < 100 for a, b in zip(values, values[1:], strict=False))

    random_pauses(master, rng, 0.3)
    assert await read(0x00) == (IDENT, 0)
    assert await read(0x04) == (SCRATCH_RESET, 0)
    assert await write(0x05, b"\xaa") == 0                   # WSTRB = 0b0010
    assert await read(0x04) == ((SCRATCH_RESET & ~0xFF00) | 0xAA00, 0)
    assert await write(0x04, (0xCAFE_F00D).to_bytes(4, "little")) == 0
    assert await read(0x04) == (0xCAFE_F00D, 0)
    assert await write(0x00, b"\x00\x00\x00\x00") == 2       # read-only: SLVERR, unchanged
    assert await read(0x00) == (IDENT, 0)
    assert await write(0x08, (0x55).to_bytes(4, "little")) == 0
    assert await read(0x08) == (0, 0)                        # write-only reads as 0
    assert await read(0x0C) == (0x55, 0)
    assert await read(0x14) == (0, 2)                        # unmapped
    assert await write(0x40, b"\x01\x02\x03\x04") == 2
    dut.irq_set.value = 0b1010
    await RisingEdge(dut.clk)
    dut.irq_set.value = 0
    assert await read(0x10) == (0b1010, 0)
    assert await write(0x10, b"\x08\x00\x00\x00") == 0       # write one to clear bit 3
    assert await read(0x10) == (0b0010, 0)
