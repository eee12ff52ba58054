"""Amaranth-simulator tests of ``SpadReader`` with a real memory behind it.

Reference: the memory's contents (random rows written before the test). Random addresses go
in with random stalls on both sides; every row must come out once, in order, with its
``last`` flag, the reader must not be busy afterwards, and without stalls one row must leave
per cycle, the first three cycles after its request (read, FIFO, output register).
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory

from octet.hdl.spad_reader import SpadReader
from octet.sim.amaranth_streams import run_with_watchdog as _run
from octet.sim.amaranth_streams import stream_get, stream_put


def _system(rows):
    m = Module()
    m.submodules.dut = dut = SpadReader(16, len(rows))
    m.submodules.mem = mem = memory.Memory(shape=16, depth=len(rows), init=rows)
    r = mem.read_port()
    m.d.comb += [r.addr.eq(dut.mem.addr), r.en.eq(dut.mem.en), dut.mem.data.eq(r.data)]
    return m, dut


@pytest.mark.parametrize("p_in, p_out", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.4, 0.6)])
def test_rows_in_order_with_random_stalls(seed, p_in, p_out):
    rng = random.Random(seed * 100 + int(10 * p_in) * 10 + int(10 * p_out))
    rows = [rng.getrandbits(16) for _ in range(32)]
    top, dut = _system(rows)
    reqs = [(rng.randrange(32), rng.getrandbits(1)) for _ in range(300)]
    got = []

    def stall(p):
        return (lambda: rng.randint(1, 3) if rng.random() < p else 0) if p else None

    async def producer(ctx):
        for addr, last in reqs:
            await stream_put(ctx, dut.i_addr, {"addr": addr, "last": last}, stall(p_in))

    async def consumer(ctx):
        for _ in reqs:
            row = await stream_get(ctx, dut.o_row, stall(p_out))
            got.append((int(row.data), int(row.last)))
        await ctx.tick()
        assert not ctx.get(dut.busy)

    _run(top, producer, consumer)
    assert got == [(rows[a], last) for a, last in reqs]


def test_one_row_per_cycle():
    top, dut = _system(list(range(100, 116)))
    leave = []

    async def tb(ctx):
        ctx.set(dut.i_addr.valid, 1)
        ctx.set(dut.o_row.ready, 1)
        cycle, k = 0, 0
        while len(leave) < 40:
            ctx.set(dut.i_addr.payload.addr, k % 16)
            await ctx.delay(1e-9)
            if ctx.get(dut.i_addr.ready):
                k += 1
            if ctx.get(dut.o_row.valid):
                leave.append((cycle, ctx.get(dut.o_row.payload.data)))
            await ctx.tick()
            cycle += 1

    _run(top, tb)
    assert [d for _, d in leave] == [100 + k % 16 for k in range(40)]
    assert leave[-1][0] - leave[0][0] == len(leave) - 1
    # Latency from the first request: read, FIFO, output register.
    assert leave[0][0] == 3
