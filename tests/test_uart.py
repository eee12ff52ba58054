"""Amaranth-simulator tests of the UART (``octet.hdl.uart``).

Reference: the serial waveform of 8N1 (start bit low, 8 data bits LSB first, stop bit high,
each ``divisor`` cycles), generated and checked here bit by bit; and a loopback of
:class:`UartTx` into :class:`UartRx` at several divisors, including odd ones.
"""

import gc
import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from octet.hdl.uart import UartRx, UartTx, uart_divisor
from octet.sim.amaranth_streams import run_with_watchdog, stream_get, stream_put


def _run(m, *benches, timeout=100_000):
    run_with_watchdog(m, *benches, timeout=timeout)


@pytest.mark.parametrize("divisor", [4, 5, 7, 16])
def test_loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [0x00, 0xFF, 0x55, 0xAA, 0x5A, 0xA5] + [random.Random(divisor).randrange(256)
                                                 for _ in range(20)]
    got = []

    async def producer(ctx):
        for byte in data:
            await stream_put(ctx, tx.i_stream, byte)

    async def consumer(ctx):
        for _ in data:
            got.append(await stream_get(ctx, rx.o_stream))

    _run(m, producer, consumer)
    assert got == data


async def _drive_bits(ctx, pin, bits, divisor):
    for bit in bits:
        ctx.set(pin, bit)
        for _ in range(divisor):
            await ctx.tick()


def _frame(byte, stop=1):
    return [0] + [byte >> i & 1 for i in range(8)] + [stop]


def test_receiver_waveform_framing_error_and_glitch():
    divisor = 8
    rx = UartRx(divisor)
    got, errors = [], []

    async def line(ctx):
        await _drive_bits(ctx, rx.rx, [1, 1] + _frame(0xC3), divisor)
        await _drive_bits(ctx, rx.rx, [1] + _frame(0x3C, stop=0) + [1, 1], divisor)
        # A low pulse shorter than half a bit is not a start bit.
        await _drive_bits(ctx, rx.rx, [0], 2)
        await _drive_bits(ctx, rx.rx, [1, 1] + _frame(0x81) + [1, 1], divisor)

    async def consumer(ctx):
        ctx.set(rx.o_stream.ready, 1)
        async for _, _, valid, payload, error in ctx.tick().sample(
                rx.o_stream.valid, rx.o_stream.payload, rx.framing_error):
            if valid:
                got.append(payload)
            if error:
                errors.append(True)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(line)
    sim.add_testbench(consumer, background=True)
    sim.run()
    assert got == [0xC3, 0x81]
    assert errors == [True]


def test_transmitter_waveform():
    divisor = 5
    tx = UartTx(divisor)
    samples = []

    async def producer(ctx):
        await stream_put(ctx, tx.i_stream, 0x96)

    async def monitor(ctx):
        async for _, _, line in ctx.tick().sample(tx.tx):
            samples.append(line)

    sim = Simulator(tx)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor, background=True)
    sim.run_until(1e-6 * 80)
    start = samples.index(0)
    bits = [samples[start + i * divisor + divisor // 2] for i in range(10)]
    assert bits == _frame(0x96)
    assert all(samples[start + 10 * divisor:])


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_arguments_are_checked():
    with pytest.raises(TypeError, match="UART divisor must be an integer of at least 4"):
        UartRx(3)
    with pytest.raises(TypeError, match="UART divisor must be an integer of at least 4"):
        UartTx(2.5)
    gc.collect()
    assert uart_divisor(50e6, 1_000_000) == 50
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(25e6, 3_000_000)
    with pytest.raises(ValueError, match="needs at least 4 clock cycles"):
        uart_divisor(10e6, 3_000_000)
