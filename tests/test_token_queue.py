"""Amaranth-simulator test of ``TokenQueue`` against a Python counter.

Random pushes, pops (only while ``available``) and clears, including runs that fill the queue
to its 255 tokens and overflow it; ``available`` and ``overflow`` must match the model in
every cycle.
"""

import random

from amaranth.sim import Simulator

from octet.hdl.token_queue import TokenQueue


def test_matches_counter(seed):
    rng = random.Random(seed)
    dut = TokenQueue()

    async def bench(ctx):
        count, overflow = 0, False
        for cycle in range(3000):
            phase = (cycle // 600) % 2            # phases that mostly push / mostly pop
            push = rng.random() < (0.9 if phase == 0 else 0.3)
            pop = count > 0 and rng.random() < (0.2 if phase == 0 else 0.8)
            clear = rng.random() < 0.002
            assert ctx.get(dut.available) == (count > 0), cycle
            assert ctx.get(dut.overflow) == overflow, cycle
            ctx.set(dut.push, push)
            ctx.set(dut.pop, pop)
            ctx.set(dut.clear, clear)
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
