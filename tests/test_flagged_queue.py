"""Amaranth-simulator tests of ``FlaggedQueue``.

Reference: ``amaranth.lib.fifo.SyncFIFO`` of the same depth, driven by the same random writes
and reads in the same simulation; every cycle ``r_rdy``, ``w_rdy``, ``level`` and (when
``r_rdy``) ``r_data`` must agree with the library FIFO, and ``r_flags`` must be the low bits of
its head, so the queue keeps the order, contents and latency of ``SyncFIFO``. Bad parameters
are refused with messages naming them.
"""

import gc
import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import fifo
from amaranth.sim import Simulator

from octet.hdl.flagged_queue import FlaggedQueue


@pytest.mark.parametrize("depth, flag_bits", [(2, 1), (4, 3), (16, 2)])
@pytest.mark.parametrize("p_w, p_r", [(1.0, 1.0), (0.9, 0.3), (0.3, 0.9), (0.6, 0.6)])
def test_matches_sync_fifo(seed, depth, flag_bits, p_w, p_r):
    rng = random.Random(seed * 1000 + depth * 100 + int(10 * p_w) * 10 + int(10 * p_r))
    m = Module()
    m.submodules.dut = dut = FlaggedQueue(16, depth, flag_bits)
    m.submodules.ref = ref = fifo.SyncFIFO(width=16, depth=depth)

    async def tb(ctx):
        taken = flagged = 0
        for _ in range(2000):
            assert ctx.get(dut.level) == ctx.get(ref.level)
            assert ctx.get(dut.w_rdy) == ctx.get(ref.w_rdy)
            assert ctx.get(dut.r_rdy) == ctx.get(ref.r_rdy)
            if ctx.get(dut.r_rdy):
                head = ctx.get(ref.r_data)
                assert ctx.get(dut.r_data) == head
                assert ctx.get(dut.r_flags) == head & ((1 << flag_bits) - 1)
                flagged += head & 1
            # Writes are offered whether or not there is room (both queues ignore them).
            w = rng.random() < p_w
            r = rng.random() < p_r
            value = rng.getrandbits(16)
            for q in (dut, ref):
                ctx.set(q.w_en, w)
                ctx.set(q.w_data, value)
                ctx.set(q.r_en, r)
            taken += r and ctx.get(dut.r_rdy)
            await ctx.tick()
        assert taken > 100 and flagged > 20

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("width, depth, flag_bits, message", [
    (0, 4, 1, "width must be a positive integer, not 0"),
    (8, 1, 1, "depth must be a power of two of at least 2, not 1"),
    (8, 6, 1, "depth must be a power of two of at least 2, not 6"),
    (8, 4, 0, r"flag_bits must be an integer from 1 to width \(8\), not 0"),
    (8, 4, 9, r"flag_bits must be an integer from 1 to width \(8\), not 9"),
])
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bad_parameters(width, depth, flag_bits, message):
    with pytest.raises(ValueError, match=message):
        FlaggedQueue(width, depth, flag_bits)
    gc.collect()  # half-built components are reported unused when collected: do it here
