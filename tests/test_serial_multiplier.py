"""Amaranth-simulator test of ``SerialMultiplier``: random operands (and zero, and all ones)
against Python's product modulo the product width, and the cycle count 1 + bit_length(b)."""

import random

import pytest
from amaranth.sim import Simulator

from octet.hdl.serial_multiplier import SerialMultiplier

# Constructors that raise still register an elaboratable.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.mark.parametrize("b_flag", [False, True])
def test_products_match(seed, b_flag):
    rng = random.Random(seed)
    dut = SerialMultiplier(40, 16, 32, b_flag=b_flag)
    cases = [(0, 0), (5, 0), (0, 7), ((1 << 40) - 1, 0xFFFF), (3, 1)]
    cases += [(rng.getrandbits(40), rng.getrandbits(rng.randint(1, 16))) for _ in range(40)]

    async def bench(ctx):
        for a, b in cases:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            if b_flag:
                ctx.set(dut.b_nonzero, b != 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 0
            while ctx.get(dut.busy):
                await ctx.tick()
                cycles += 1
            assert ctx.get(dut.product) == (a * b) % (1 << 32), (a, b)
            assert cycles == 1 + b.bit_length()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_rejects_bad_widths():
    with pytest.raises(TypeError, match="Multiplier b_width must be a positive integer, not 0"):
        SerialMultiplier(8, 0, 8)


def test_rejects_bad_flag():
    with pytest.raises(TypeError, match="Multiplier b_flag must be a bool, not 1"):
        SerialMultiplier(8, 8, 8, b_flag=1)
