"""Amaranth-simulator test of ``ReadAligner``.

Reference: a Python model that cuts each segment's bytes out of its beats and packs them into
zero-padded rows (with the segment's tag, and first / last flags). Separate testbenches feed
segments, feed beats and take rows, each with random stalls; rows must come out in order with
the right data and ``last`` flags. A run without stalls checks that one beat per cycle is
absorbed when rows are at least as wide as the bus, one row every two cycles for one-beat
segments and one per cycle for zero (padding) segments.
"""

import random

import pytest
from amaranth.sim import Simulator

from octet.hdl.read_aligner import ReadAligner


def _model(segments, bus_bytes, row_bytes):
    rows = []
    for tag, (offset, nbytes, zero, beats) in enumerate(segments):
        raw = b"".join(b.to_bytes(bus_bytes, "little") for b in beats)
        payload = bytes(nbytes) if zero else raw[offset:offset + nbytes]
        for i in range(0, nbytes, row_bytes):
            chunk = payload[i:i + row_bytes].ljust(row_bytes, b"\0")
            rows.append((int.from_bytes(chunk, "little"), i == 0, i + row_bytes >= nbytes,
                         tag % 64))
    return rows


def _segments(rng, bus_bytes, n):
    segs = []
    for _ in range(n):
        zero = rng.random() < 0.2
        offset = 0 if zero else rng.randrange(bus_bytes)
        nbytes = rng.choice([1, 2, 3, rng.randint(1, 40)])
        beats = [] if zero else [rng.getrandbits(8 * bus_bytes)
                                 for _ in range(-(-(offset + nbytes) // bus_bytes))]
        segs.append((offset, nbytes, zero, beats))
    return segs


def _run(bus_bytes, row_bytes, segs, stall, seed):
    dut = ReadAligner(bus_bytes, row_bytes, 6)
    expect = _model(segs, bus_bytes, row_bytes)
    got = []
    cycles = []
    rng = random.Random(seed)

    async def seg_bench(ctx):
        for tag, (offset, nbytes, zero, _) in enumerate(segs):
            ctx.set(dut.i_seg.payload, {"offset": offset, "nbytes": nbytes, "zero": zero,
                                        "tag": tag % 64})
            ctx.set(dut.i_seg.valid, 1)
            await ctx.tick().until(dut.i_seg.ready)
            ctx.set(dut.i_seg.valid, 0)
            while rng.random() < stall:
                await ctx.tick()

    async def beat_bench(ctx):
        for beat in [b for s in segs for b in s[3]]:
            ctx.set(dut.i_data.payload, beat)
            ctx.set(dut.i_data.valid, 1)
            await ctx.tick().until(dut.i_data.ready)
            ctx.set(dut.i_data.valid, 0)
            while rng.random() < stall:
                await ctx.tick()

    async def row_bench(ctx):
        cycle = 0
        while len(got) < len(expect):
            ready = rng.random() >= stall
            ctx.set(dut.o_row.ready, ready)
            await ctx.delay(1e-9)
            row = ctx.get(dut.o_row.payload)
            valid = ctx.get(dut.o_row.valid)
            await ctx.tick()
            cycle += 1
            if valid and ready:
                got.append((row.data, row.first, row.last, row.tag))
                cycles.append(cycle)
            assert cycle < 20000

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(seg_bench, background=True)
    sim.add_testbench(beat_bench, background=True)
    sim.add_testbench(row_bench)
    sim.run()
    assert got == expect
    return cycles


# (8, 3) and (8, 5): rings of 12 and 20 bytes, not a multiple of the beat.
@pytest.mark.parametrize("bus_bytes,row_bytes",
                         [(8, 4), (8, 8), (16, 8), (8, 12), (4, 16), (8, 3), (8, 5)])
def test_rows_match_model_with_random_stalls(bus_bytes, row_bytes, seed):
    rng = random.Random(seed)
    _run(bus_bytes, row_bytes, _segments(rng, bus_bytes, 60), 0.3, seed)


def test_throughput_without_stalls(seed):
    rng = random.Random(seed)
    # One long segment, rows as wide as the bus: one beat (one row) per cycle.
    beats = [rng.getrandbits(64) for _ in range(32)]
    cycles = _run(8, 8, [(0, 256, 0, beats)], 0.0, seed)
    assert cycles[-1] - cycles[0] == len(cycles) - 1
    # One-beat, one-row segments back to back: a row every two cycles (the beat is
    # absorbed, then its row leaves while the next segment starts).
    segs = [(0, 4, 0, [rng.getrandbits(64)]) for _ in range(20)]
    cycles = _run(8, 4, segs, 0.0, seed)
    assert cycles[-1] - cycles[0] <= 2 * (len(cycles) - 1)
    # Zero (padding) segments of one row back to back, as a padded convolution's IM2COL
    # makes them: a row per cycle.
    cycles = _run(8, 4, [(0, 4, 1, [])] * 20, 0.0, seed)
    assert cycles[-1] - cycles[0] == len(cycles) - 1
