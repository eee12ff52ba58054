"""Amaranth-simulator tests of ``HeadQueue``.

Reference: ``amaranth.lib.fifo.SyncFIFOBuffered`` of the same depth, driven by the same random
writes (only while the level is below the depth and the library FIFO takes them) and reads, in
the same simulation; every cycle ``r_rdy``, ``level`` and (when ``r_rdy``) ``r_data`` must
agree, so the queue keeps the order, the contents and the latency of the library FIFO. Bad
parameters are refused.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import fifo
from amaranth.sim import Simulator

from octet.hdl.head_queue import HeadQueue


@pytest.mark.parametrize("depth", [2, 4, 9])
@pytest.mark.parametrize("p_w, p_r", [(1.0, 1.0), (0.9, 0.3), (0.3, 0.9), (0.6, 0.6)])
def test_matches_sync_fifo_buffered(seed, depth, p_w, p_r):
    rng = random.Random(seed * 1000 + depth * 100 + int(10 * p_w) * 10 + int(10 * p_r))
    m = Module()
    m.submodules.dut = dut = HeadQueue(16, depth)
    m.submodules.ref = ref = fifo.SyncFIFOBuffered(width=16, depth=depth)

    async def tb(ctx):
        taken = 0
        for _ in range(2000):
            level = ctx.get(dut.level)
            assert level == ctx.get(ref.level)
            assert ctx.get(dut.r_rdy) == ctx.get(ref.r_rdy)
            if ctx.get(dut.r_rdy):
                assert ctx.get(dut.r_data) == ctx.get(ref.r_data)
            w = level < depth and ctx.get(ref.w_rdy) and rng.random() < p_w
            r = rng.random() < p_r
            value = rng.getrandbits(16)
            for q in (dut, ref):
                ctx.set(q.w_en, w)
                ctx.set(q.w_data, value)
                ctx.set(q.r_en, r)
            taken += r and ctx.get(dut.r_rdy)
            await ctx.tick()
        assert taken > 100

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("width, depth", [(0, 4), (8, 1), (8, 2.0)])
def test_bad_parameters(width, depth):
    with pytest.raises(ValueError):
        HeadQueue(width, depth)
