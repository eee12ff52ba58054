"""cocotb tests of the board system (``octet.hdl.soc.Soc``) through its UART, no board needed.

The host side is the real one: :class:`~octet.host.board.BoardDevice` on a
:class:`~octet.sim.uart_serial.SimSerial`, whose bytes are bit-banged onto the design's ``rx``
pin and decoded from its ``tx`` pin. References: NumPy (``octet.sim.golden.matmul_int32`` /
``requantize``) for GEMMs compiled by ``octet.host.compiler.run_gemm`` and run through the
bridge, and the protocol's own encoder (``octet.host.uart_protocol``) for corrupted frames,
which must be answered with the error status and leave memory and registers unchanged.

Configuration from the environment: ``OCTET_CONFIG`` (JSON of ``AcceleratorConfig``),
``OCTET_DIVISOR``, ``OCTET_SEED``. Run by ``tests/test_soc_uart.py``.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles

from octet.config import AcceleratorConfig
from octet.host import uart_protocol as up
from octet.host.board import BoardDevice
from octet.host.compiler import run_gemm
from octet.host.uart_protocol import Command, Status
from octet.isa import Reg
from octet.numerics import RequantParams
from octet.sim.golden import matmul_int32, requantize
from octet.sim.uart_serial import SimSerial

CLOCK_NS = 10


async def _start(dut):
    config = AcceleratorConfig(**json.loads(os.environ["OCTET_CONFIG"]))
    divisor = int(os.environ["OCTET_DIVISOR"])
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    return config, SimSerial(dut.clk, dut.rx, dut.tx, divisor, timeout_bytes=512)


class _ReadingWhileBusy(BoardDevice):
    """Reads the operand at address 0 (``run_gemm`` puts A there) every time ``run`` waits
    for a busy accelerator, so the bridge and the accelerator contend for the memory."""

    expected = b""
    concurrent_reads = 0

    def wait(self, max_cycles):
        if self.expected:
            assert self.read_mem(0, len(self.expected)) == self.expected
            self.concurrent_reads += 1
        return max_cycles


@cocotb.test()
async def gemm_through_uart(dut):
    """run_gemm on a BoardDevice over the simulated UART is bit-exact with NumPy, also while
    the host reads memory during the accelerator's run."""
    config, serial = await _start(dut)
    rng = np.random.default_rng(int(os.environ.get("OCTET_SEED", "1")))

    def host():
        device = _ReadingWhileBusy("sim", serial_port=serial)
        assert device.config == config, (device.config, config)
        a = rng.integers(-128, 128, (24, 20), dtype=np.int8)
        b = rng.integers(-128, 128, (20, 12), dtype=np.int8)
        device.expected = a.tobytes()
        out, _ = run_gemm(device, a, b)
        np.testing.assert_array_equal(out, matmul_int32(a, b))
        assert device.concurrent_reads > 0
        device.expected = b""
        a = rng.integers(-128, 128, (5, 7), dtype=np.int8)
        b = rng.integers(-128, 128, (7, 3), dtype=np.int8)
        out, stats = run_gemm(device, a, b)
        np.testing.assert_array_equal(out, matmul_int32(a, b))
        params = RequantParams.create(rng.integers(1 << 29, 1 << 30, 3, dtype=np.int32),
                                      np.array([-3, -5, 0], dtype=np.int32),
                                      rng.integers(-1000, 1000, 3, dtype=np.int32), 3, False)
        out8, _ = run_gemm(device, a, b, params)
        np.testing.assert_array_equal(out8, requantize(matmul_int32(a, b), params))
        return stats.counters["cycles"]

    cycles = await bridge(host)()
    dut._log.info("GEMM 5x7x3: %d accelerator cycles; UART bytes out %d, in %d (all GEMMs)",
                  cycles, serial.bytes_written, serial.bytes_read)


async def _transact(serial, frame):
    await serial.send(frame)
    head = await serial.receive(up.HEADER_BYTES)
    assert len(head) == up.HEADER_BYTES and head[0] == up.SYNC_REPLY, head
    rest = await serial.receive((head[3] | head[4] << 8) + 2)
    data = head + rest
    return up.parse_reply(lambda n, _buf=[data]: _pop(_buf, n))


def _pop(buf, n):
    out, buf[0] = buf[0][:n], buf[0][n:]
    return out


@cocotb.test()
async def corrupted_frames_write_nothing(dut):
    """Bad CRC, truncated, unknown-command and malformed frames get their error reply and
    change neither memory nor registers; good frames around them work."""
    config, serial = await _start(dut)
    pattern = bytes(range(64))
    r = await _transact(serial, up.write_mem_frame(1, 0x200, pattern))
    assert r.status == Status.OK, r
    r = await _transact(serial, up.write_reg_frame(2, Reg.PROG_BASE, 0x40))
    assert r.status == Status.OK, r

    def flipped(frame, index, mask=0x10):
        frame = bytearray(frame)
        frame[index] ^= mask
        return bytes(frame)

    write = up.write_mem_frame(3, 0x200, b"\xee" * 64)
    write_reg = up.write_reg_frame(3, Reg.PROG_BASE, 0x1000)
    cases = [
        ("data byte flipped", flipped(write, 30), Status.CRC),
        ("address byte flipped", flipped(write, 6), Status.CRC),
        ("register value flipped", flipped(write_reg, 10), Status.CRC),
        ("CRC byte flipped", flipped(write_reg, len(write_reg) - 1, 0x01), Status.CRC),
        ("truncated data", write[:40], Status.TIMEOUT),
        ("truncated register write", write_reg[:8], Status.TIMEOUT),
        ("unknown command", up.encode_request(0x7E, 3, b"\x00" * 8), Status.COMMAND),
        ("length wrong for command", up.encode_request(Command.WRITE_REG, 3, b"\x1c\0\0\0"),
         Status.LENGTH),
        ("past the device memory", up.write_mem_frame(3, config.mem_bytes - 8, bytes(16)),
         Status.ADDRESS),
    ]
    for name, frame, expected in cases:
        r = await _transact(serial, frame)
        assert (r.status, r.payload) == (expected, b""), (name, r)
        r = await _transact(serial, up.read_mem_frame(4, 0x200, len(pattern)))
        assert (r.status, r.payload) == (Status.OK, pattern), name
        r = await _transact(serial, up.read_reg_frame(5, Reg.PROG_BASE))
        assert r.payload == (0x40).to_bytes(4, "little"), name
    r = await _transact(serial, up.read_mem_frame(6, config.mem_bytes - 16, 16))
    assert r.payload == bytes(16)
