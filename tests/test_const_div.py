"""Division by a constant in hardware (``octet.hdl.const_div``), against Python's ``//``
(Amaranth simulator)."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from octet.hdl.const_div import floor_div_const


@pytest.mark.parametrize("divisor", [1, 3, 4, 5, 12, 16, 48])
def test_floor_div_const_matches_python(divisor):
    width = 17
    value = Signal(width)
    quotient = Signal(width)
    m = Module()
    m.d.comb += quotient.eq(floor_div_const(value, divisor, width))
    rng = random.Random(divisor)
    cases = [0, 1, divisor - 1, divisor, (1 << width) - 1] + \
        [rng.randrange(1 << width) for _ in range(300)]

    async def tb(ctx):
        for x in cases:
            ctx.set(value, x)
            assert ctx.get(quotient) == x // divisor, x

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
