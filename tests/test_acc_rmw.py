"""Amaranth-simulator tests of ``AccumulatorRmw`` with a real, non-transparent memory.

Reference: a Python model of the accumulator (a row is overwritten, or added into per int32
column with wrap-around, in the order the rows come). Rows come with random gaps and from a
few addresses, so every reuse distance (the same row 1, 2, 3, 4 or more cycles later) occurs;
after the last write the memory must equal the model, every token must be pushed in the cycle
its row is written, and ``stop`` must drop exactly the rows in stage 2 while it is high.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory

from octet.hdl.acc_rmw import AccumulatorRmw
from octet.sim.amaranth_streams import run_with_watchdog as _run

MASK = (1 << 32) - 1


def _system(cols, rows):
    m = Module()
    m.submodules.rmw = dut = AccumulatorRmw(cols, rows)
    m.submodules.mem = mem = memory.Memory(shape=32 * cols, depth=rows, init=[])
    w, r = mem.write_port(), mem.read_port()          # not transparent
    m.d.comb += [w.addr.eq(dut.acc_w.addr), w.data.eq(dut.acc_w.data),
                 w.en.eq(dut.acc_w.en), r.addr.eq(dut.acc_r.addr), r.en.eq(dut.acc_r.en),
                 dut.acc_r.data.eq(r.data)]
    return m, dut, mem


def _add(old, new, cols):
    return sum(((((old >> 32 * j) + (new >> 32 * j)) & MASK) << 32 * j) for j in range(cols))


@pytest.mark.parametrize("p_gap", [0.0, 0.3, 0.6])
@pytest.mark.parametrize("addresses", [1, 2, 3, 4, 8])
def test_matches_the_accumulator_model(seed, p_gap, addresses):
    cols, depth = 2, 8
    rng = random.Random(seed * 1000 + addresses * 10 + int(10 * p_gap))
    top, dut, mem = _system(cols, depth)
    model = [0] * depth
    rows = []
    for _ in range(300):
        data = rng.choice([rng.getrandbits(32 * cols), (1 << 32 * cols) - 1,
                           (0x80000000 << 32) | 0x7FFFFFFF])
        rows.append({"addr": rng.randrange(addresses), "data": data,
                     "acc": int(rng.random() < 0.8), "push_prev": rng.getrandbits(1),
                     "push_next": rng.getrandbits(1)})
    pushes = []

    async def driver(ctx):
        for row in rows:
            while rng.random() < p_gap:
                ctx.set(dut.i_row.valid, 0)
                ctx.set(dut.i_row.payload.addr, rng.randrange(depth))   # read, unused
                await ctx.tick()
            ctx.set(dut.i_row.valid, 1)
            ctx.set(dut.i_row.payload, row)
            await ctx.tick()
        ctx.set(dut.i_row.valid, 0)
        for _ in range(6):
            await ctx.tick()
        assert not ctx.get(dut.busy)
        for a in range(depth):
            assert ctx.get(mem.data[a]) == model[a], f"row {a}"

    async def monitor(ctx):
        async for _clk, _rst, en, prev, nxt in ctx.tick().sample(
                dut.acc_w.en, dut.push_prev, dut.push_next):
            if prev or nxt:
                assert en, "a token was pushed without its row's write"
                pushes.append((prev, nxt))

    for row in rows:
        a = row["addr"]
        model[a] = _add(model[a], row["data"], cols) if row["acc"] else row["data"]
    _run(top, driver, background=[monitor])
    assert pushes == [(r["push_prev"], r["push_next"]) for r in rows
                      if r["push_prev"] or r["push_next"]]


def test_stop_drops_the_row_in_stage_two():
    top, dut, mem = _system(1, 4)
    written = []

    async def tb(ctx):
        for k in range(4):                     # rows 0..3 back to back, 10 + k each
            ctx.set(dut.i_row.valid, 1)
            ctx.set(dut.i_row.payload, {"addr": k, "data": 10 + k, "acc": 0})
            ctx.set(dut.stop, k == 3)          # row 1 is in stage 2 in this cycle
            await ctx.tick()
        ctx.set(dut.i_row.valid, 0)
        ctx.set(dut.stop, 0)
        for _ in range(5):
            await ctx.tick()
        written.extend(ctx.get(mem.data[a]) for a in range(4))

    _run(top, tb)
    assert written == [10, 0, 12, 13]


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="Column count must be a positive integer, not 0"):
        AccumulatorRmw(0, 4)
    with pytest.raises(TypeError, match="Accumulator depth must be a positive integer"):
        AccumulatorRmw(2, True)
