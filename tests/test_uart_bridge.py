"""Amaranth-simulator tests of the UART bridge's protocol engine (``octet.hdl.uart_bridge``).

The bridge's byte streams are driven directly (the UART itself is ``tests/test_uart.py``);
behind it are an :class:`~octet.hdl.axi_bram.AxiBram` and a small
:class:`~octet.hdl.axil_csr.CsrBank`. Reference: requests are built and replies parsed by the
host's :mod:`octet.host.uart_protocol` (the one definition of the protocol), memory contents
are compared with a bytearray, and after every rejected frame the whole memory is read back
through the RAM's simulator handle to prove nothing was written.
"""

import gc
import io
import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from octet.hdl.axi_bram import AxiBram
from octet.hdl.axil_csr import CsrBank
from octet.hdl.uart_bridge import UartBridge, crc16_step
from octet.hdl.uart_checks import UartRequestChecks
from octet.hdl.uart_reply import UartReply
from octet.host import uart_protocol as up
from octet.host.uart_protocol import Command, Status
from octet.sim.amaranth_streams import stream_get, stream_put

MEM = 1024
BUS = 8
TIMEOUT = 300
IDENT = 0x1234_5678


class Harness(wiring.Component):
    i_stream: In(stream.Signature(8))
    o_stream: Out(stream.Signature(8))

    def __init__(self):
        super().__init__()
        self.bridge = UartBridge(bus_bytes=BUS, mem_bytes=MEM, clock_hz=12_345_678,
                                 timeout_cycles=TIMEOUT)
        self.bram = AxiBram(MEM, 8 * BUS)
        self.csr = CsrBank([("scratch", 0x00, "rw", 0), ("ident", 0x04, "ro")])

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        m.submodules.bram = self.bram
        m.submodules.csr = self.csr
        wiring.connect(m, wiring.flipped(self.i_stream), self.bridge.i_stream)
        wiring.connect(m, self.bridge.o_stream, wiring.flipped(self.o_stream))
        wiring.connect(m, self.bridge.m_axi, self.bram.s_axi)
        wiring.connect(m, self.bridge.m_axil, self.csr.bus)
        m.d.comb += self.csr.ident_r_data.eq(IDENT)
        return m


async def send(ctx, dut, frame):
    for byte in frame:
        await stream_put(ctx, dut.i_stream, byte)


async def receive(ctx, dut):
    head = bytes([await stream_get(ctx, dut.o_stream) for _ in range(up.HEADER_BYTES)])
    length = head[3] | head[4] << 8
    rest = bytes([await stream_get(ctx, dut.o_stream) for _ in range(length + 2)])
    return up.parse_reply(io.BytesIO(head + rest).read)


async def transact(ctx, dut, frame):
    await send(ctx, dut, frame)
    return await receive(ctx, dut)


def memory_bytes(ctx, dut):
    data = dut.bram.ram.data
    return b"".join(ctx.get(data[i]).to_bytes(BUS, "little") for i in range(MEM // BUS))


def simulate(body, timeout=200_000):
    dut = Harness()
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    done = []

    async def bench(ctx):
        await body(ctx, dut)
        done.append(True)

    async def watchdog(ctx):
        for _ in range(timeout):
            await ctx.tick()
        raise AssertionError(f"bridge simulation still running after {timeout} cycles")

    sim.add_testbench(bench)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    assert done


def test_crc_gateware_matches_host_definition():
    """The unrolled XOR network equals the reference CRC for random register/byte pairs."""
    from amaranth.hdl import Const
    rng = random.Random(1)
    for _ in range(50):
        crc, byte = rng.randrange(1 << 16), rng.randrange(256)
        m = Module()
        value = crc16_step(Const(crc, 16), Const(byte, 8))
        sim = Simulator(m)
        out = []

        async def bench(ctx, value=value, out=out):
            out.append(ctx.get(value))

        sim.add_testbench(bench)
        sim.run()
        assert out[0] == up.crc16_update(crc, byte)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bridge_arguments_are_checked():
    with pytest.raises(TypeError, match="bus width must be 4, 8 or 16 bytes"):
        UartBridge(bus_bytes=3)
    with pytest.raises(TypeError, match="timeout must be an integer from 16"):
        UartBridge(timeout_cycles=1)
    gc.collect()      # the half-built components warn now, inside the filter


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bridge_parts_arguments_are_checked():
    with pytest.raises(TypeError, match="UART reply bus width must be 4, 8 or 16 bytes, not 5"):
        UartReply(5)
    with pytest.raises(TypeError, match="UART request checks register address width must be "
                                        "an integer from 3 to 32, not 2"):
        UartRequestChecks(1024, 2)
    with pytest.raises(TypeError, match="UART request checks memory size must be an integer"):
        UartRequestChecks(0, 8)
    gc.collect()


def test_info_and_registers():
    async def body(ctx, dut):
        r = await transact(ctx, dut, up.info_frame(7))
        assert (r.status, r.seq) == (Status.OK, 7)
        assert up.decode_info(r.payload) == {"version": up.PROTOCOL_VERSION, "bus_bytes": BUS,
                                             "max_data": up.MAX_DATA, "clock_hz": 12_345_678}
        r = await transact(ctx, dut, up.write_reg_frame(1, 0x00, 0xDEADBEEF))
        assert (r.status, r.seq, r.payload) == (Status.OK, 1, b"")
        r = await transact(ctx, dut, up.read_reg_frame(2, 0x00))
        assert (r.status, r.payload) == (Status.OK, (0xDEADBEEF).to_bytes(4, "little"))
        r = await transact(ctx, dut, up.read_reg_frame(3, 0x04))
        assert r.payload == IDENT.to_bytes(4, "little")
        # CsrBank answers SLVERR for a write to a read-only register and unmapped offsets.
        for frame in (up.write_reg_frame(4, 0x04, 1), up.read_reg_frame(5, 0x40)):
            r = await transact(ctx, dut, frame)
            assert (r.status, r.payload) == (Status.BUS_ERROR, b"")
        # Misaligned, or beyond the 8-bit register window: no bus access at all.
        for frame in (up.read_reg_frame(6, 0x02), up.write_reg_frame(7, 0x100, 5)):
            r = await transact(ctx, dut, frame)
            assert r.status == Status.ADDRESS
        r = await transact(ctx, dut, up.read_reg_frame(8, 0x00))
        assert r.payload == (0xDEADBEEF).to_bytes(4, "little")
    simulate(body)


def test_memory_unaligned_bursts(seed):
    rng = random.Random(seed)
    model = bytearray(MEM)
    cases = [(0, 1), (3, 1), (7, 2), (5, 13), (8, 8), (1, up.MAX_DATA), (MEM - 5, 5),
             (MEM - up.MAX_DATA, up.MAX_DATA)]
    cases += [(a, rng.randint(1, min(up.MAX_DATA, MEM - a)))
              for a in (rng.randrange(MEM - 1) for _ in range(6))]

    async def body(ctx, dut):
        for seq, (addr, n) in enumerate(cases):
            blob = bytes(rng.randrange(256) for _ in range(n))
            r = await transact(ctx, dut, up.write_mem_frame(seq & 0xFF, addr, blob))
            assert (r.status, r.payload) == (Status.OK, b""), (addr, n)
            model[addr:addr + n] = blob
            assert memory_bytes(ctx, dut) == bytes(model), (addr, n)
            start = rng.randrange(MEM - 1)
            count = rng.randint(1, min(up.MAX_DATA, MEM - start))
            r = await transact(ctx, dut, up.read_mem_frame(seq & 0xFF, start, count))
            assert (r.status, r.payload) == (Status.OK, bytes(model[start:start + count]))
    simulate(body, timeout=400_000)


def _corrupted_frames():
    good = up.write_mem_frame(9, 16, bytes(range(1, 41)))
    bad_crc = bytearray(good)
    bad_crc[20] ^= 0x01
    bad_len = up.encode_request(Command.READ_REG, 9, b"\x00\x00\x00")
    return [
        ("bad CRC", bytes(bad_crc), Status.CRC),
        ("bad CRC byte", good[:-1] + bytes([good[-1] ^ 0x80]), Status.CRC),
        ("unknown command", up.encode_request(0x37, 9, b"\x01\x02"), Status.COMMAND),
        ("READ_REG payload of 3 bytes", bad_len, Status.LENGTH),
        ("WRITE_MEM without data", up.encode_request(Command.WRITE_MEM, 9, bytes(4)),
         Status.LENGTH),
        ("WRITE_MEM of 257 bytes", up.encode_request(Command.WRITE_MEM, 9, bytes(4 + 257)),
         Status.LENGTH),
        ("READ_MEM of 0 bytes", up.encode_request(Command.READ_MEM, 9, bytes(6)),
         Status.LENGTH),
        ("WRITE_MEM past the end", up.write_mem_frame(9, MEM - 3, b"\x11" * 4),
         Status.ADDRESS),
        ("WRITE_MEM at 2**32 - 1", up.write_mem_frame(9, 0xFFFF_FFFF, b"\x11\x22"),
         Status.ADDRESS),
        ("truncated", good[:30], Status.TIMEOUT),
        ("truncated header", good[:3], Status.TIMEOUT),
    ]


@pytest.mark.parametrize("name, frame, expected", _corrupted_frames(),
                         ids=[c[0] for c in _corrupted_frames()])
def test_rejected_frames_write_nothing(name, frame, expected):
    async def body(ctx, dut):
        before = memory_bytes(ctx, dut)
        r = await transact(ctx, dut, b"\x00\xff" + frame)   # garbage before sync is dropped
        assert (r.status, r.payload) == (expected, b""), name
        assert memory_bytes(ctx, dut) == before, f"{name}: memory changed"
        # The bridge is back in sync: a good request right after works.
        r = await transact(ctx, dut, up.write_mem_frame(10, 100, b"ok"))
        assert r.status == Status.OK
        r = await transact(ctx, dut, up.read_mem_frame(11, 99, 4))
        assert (r.status, r.payload) == (Status.OK, b"\x00ok\x00")
    simulate(body)
