"""Amaranth-simulator test of ``chunked_greater`` against Python's ``>``: random and edge
operands of unequal widths, the result checked two cycles after the operands."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from octet.hdl.staged_compare import chunked_greater


@pytest.mark.parametrize("wa, wb, chunk", [(80, 33, 12), (35, 33, 12), (17, 48, 5), (8, 8, 3)])
def test_matches_python(seed, wa, wb, chunk):
    rng = random.Random(seed * 1000 + wa * 10 + wb)
    a, b = Signal(wa), Signal(wb)
    m = Module()
    out = Signal()
    m.d.comb += out.eq(chunked_greater(m, a, b, "t", chunk))
    cases = [(0, 0), (1, 0), (0, 1), ((1 << wa) - 1, (1 << wb) - 1)]
    for _ in range(300):
        x = rng.randrange(1 << wb)
        y = x + rng.choice([-1, 0, 1, rng.randrange(-1000, 1000)])
        if 0 <= y < 1 << wa:
            cases.append((y, x))
        cases.append((rng.randrange(1 << rng.randrange(1, wa + 1)), rng.randrange(1 << wb)))

    async def bench(ctx):
        expect = [None]
        for x, y in cases + [(0, 0)]:
            ctx.set(a, x)
            ctx.set(b, y)
            await ctx.tick()              # result: the pair before
            expect.append(x > y)
            if expect[-2] is not None:
                assert ctx.get(out) == expect[-2], (x, y)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_rejects_bad_chunk():
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        chunked_greater(Module(), Signal(4), Signal(4), "t", 0)
