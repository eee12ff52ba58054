"""Amaranth-simulator tests of ``SkidBuffer``.

Reference: the list of beats put in. A producer and a consumer testbench stall at random
(or never); every beat must come out once, in order, and without stalls one beat must pass
per cycle. The stage's outputs must not depend combinationally on its inputs (checked by
changing the inputs between clock edges).
"""

import random

import pytest

from octet.hdl.skid_buffer import SkidBuffer
from octet.sim.amaranth_streams import run_with_watchdog as _run
from octet.sim.amaranth_streams import stream_get, stream_put


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("p_in, p_out", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.4, 0.6),
                                         (0.7, 0.3)])
def test_random_stalls(seed, p_in, p_out, groups):
    rng = random.Random(seed * 100 + int(10 * p_in) * 10 + int(10 * p_out))
    dut = SkidBuffer(16, enable_groups=groups)
    beats = [rng.randrange(1 << 16) for _ in range(400)]
    got = []

    def stall(p):
        return (lambda: rng.randint(1, 3) if rng.random() < p else 0) if p else None

    async def producer(ctx):
        for b in beats:
            await stream_put(ctx, dut.i_stream, b, stall(p_in))

    async def consumer(ctx):
        for _ in beats:
            got.append(await stream_get(ctx, dut.o_stream, stall(p_out)))
        await ctx.tick()
        assert not ctx.get(dut.busy)

    _run(dut, producer, consumer)
    assert got == beats


@pytest.mark.parametrize("groups", [1, 8])
def test_full_throughput(groups):
    dut = SkidBuffer(8, enable_groups=groups)
    n = 64
    cycles = []

    async def producer(ctx):
        ctx.set(dut.i_stream.valid, 1)
        for k in range(n):
            ctx.set(dut.i_stream.payload, k)
            await ctx.tick().until(dut.i_stream.ready)
        ctx.set(dut.i_stream.valid, 0)

    async def consumer(ctx):
        ctx.set(dut.o_stream.ready, 1)
        cycle = 0
        while len(cycles) < n:
            valid, payload = ctx.get(dut.o_stream.valid), ctx.get(dut.o_stream.payload)
            await ctx.tick()
            if valid:
                assert payload == len(cycles)
                cycles.append(cycle)
            cycle += 1

    _run(dut, producer, consumer)
    assert cycles == list(range(cycles[0], cycles[0] + n))
    assert cycles[0] == 1


def test_outputs_are_registers():
    dut = SkidBuffer(8)

    async def bench(ctx):
        # Fill both registers while the consumer stalls.
        ctx.set(dut.o_stream.ready, 0)
        ctx.set(dut.i_stream.valid, 1)
        ctx.set(dut.i_stream.payload, 1)
        await ctx.tick()
        ctx.set(dut.i_stream.payload, 2)
        await ctx.tick()
        assert ctx.get(dut.i_stream.ready) == 0
        outputs = (dut.o_stream.valid, dut.o_stream.payload, dut.i_stream.ready, dut.busy)
        before = [ctx.get(s) for s in outputs]
        for valid, payload, ready in ((0, 7, 1), (1, 9, 0), (1, 3, 1)):
            ctx.set(dut.i_stream.valid, valid)
            ctx.set(dut.i_stream.payload, payload)
            ctx.set(dut.o_stream.ready, ready)
            assert [ctx.get(s) for s in outputs] == before
        ctx.set(dut.i_stream.valid, 0)
        ctx.set(dut.o_stream.ready, 1)
        seen = []
        for _ in range(3):
            if ctx.get(dut.o_stream.valid):
                seen.append(ctx.get(dut.o_stream.payload))
            await ctx.tick()
        assert seen == [1, 2]

    _run(dut, bench)


def test_argument_check():
    with pytest.raises(TypeError, match="Skid buffer payload must be a shape, not 'wide'"):
        SkidBuffer("wide")
    for groups in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match=r"Enable groups must be an integer from 1 to the "
                                             r"payload's width \(8\), not "):
            SkidBuffer(8, enable_groups=groups)
