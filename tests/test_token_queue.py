"""Amaranth-simulator tests of ``TokenQueue``.

Reference: a Python counter. Random pushes and pops (a pop only while ``available``, as the
units do), runs up to overflow and clears; ``available`` (a register) must equal "count != 0"
in every cycle and ``overflow`` must stick from the push that found 255 tokens.
"""

import random

import pytest
from amaranth.sim import Simulator

from octet.hdl.token_queue import TokenQueue


@pytest.mark.parametrize("p_push, p_pop", [(0.5, 0.5), (0.9, 0.1), (0.2, 0.8), (1.0, 0.0)])
def test_counts_like_a_counter(seed, p_push, p_pop):
    rng = random.Random(seed * 1000 + int(100 * p_push))
    dut = TokenQueue()

    async def bench(ctx):
        count, overflow = 0, False
        for cycle in range(1500):
            clear = rng.random() < 0.003
            push = rng.random() < p_push
            assert ctx.get(dut.available) == (count != 0), f"cycle {cycle}, count {count}"
            assert ctx.get(dut.overflow) == overflow, f"cycle {cycle}"
            pop = count != 0 and rng.random() < p_pop
            ctx.set(dut.clear, clear)
            ctx.set(dut.push, push)
            ctx.set(dut.pop, pop)
            await ctx.tick()
            if clear:
                count, overflow = 0, False
            elif push and not pop:
                if count == 255:
                    overflow = True
                else:
                    count += 1
            elif pop and not push:
                count -= 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
