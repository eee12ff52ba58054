"""Amaranth-simulator tests of the store unit's write gearbox (``octet.hdl.write_packer``).

A producer testbench sends runs of contiguous chunks (random sizes, addresses and gaps); two
consumers take the bus requests and the strobed beats with random stalls and apply the beats
to a bytearray, the way the AXI writer and memory would. Checked: one request per run with
exactly the run's aligned beats, every chunk byte written and no other byte touched, one
chunk per cycle for chunks of up to a beat, and ``flush`` closing a run whose last chunks
never come.
"""

from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from octet.hdl.write_packer import WritePacker
from octet.sim.amaranth_streams import stream_get, stream_put

MEM = 4096


def _runs(rng, bus, chunk, count):
    """``count`` runs: lists of (addr, bytes) chunks, contiguous inside a run."""
    runs, addr = [], 64
    for _ in range(count):
        addr += int(rng.integers(0, 3 * bus))
        run = []
        for _ in range(int(rng.integers(1, 12))):
            n = int(rng.integers(1, chunk + 1))
            run.append((addr, rng.integers(0, 256, n, dtype=np.uint8).tobytes()))
            addr += n
        runs.append(run)
    assert addr < MEM
    return runs


def _simulate(bus, chunk, runs, stall, seed, flush_after=None):
    """Run the packer on ``runs``; return (memory, requests, cycles).

    With ``flush_after`` = k, the last run gets only its first k chunks, then ``flush``."""
    dut = WritePacker(bus, chunk)
    rng = np.random.default_rng(seed)
    memory = bytearray(MEM)
    requests = deque()
    done = {"chunks": 0, "cycles": 0}
    sent = [list(run) for run in runs]
    if flush_after is not None:
        sent[-1] = sent[-1][:flush_after]
    expected_beats = [-(-(run[0][0] % bus + sum(len(d) for _, d in run)) // bus) for run in runs]

    def pause():
        return int(rng.integers(1, 3)) if stall and rng.random() < 0.3 else 0

    async def producer(ctx):
        for run, full in zip(sent, runs, strict=True):
            total = sum(len(d) for _, d in full)
            for i, (addr, data) in enumerate(run):
                # Bytes past nbytes are garbage (a row's unused lanes): never written.
                garbage = rng.integers(0, 256, chunk, dtype=np.uint8).tobytes()
                padded = data + garbage[len(data):]
                await stream_put(ctx, dut.i_chunk, {
                    "data": int.from_bytes(padded, "little"), "addr": addr,
                    "nbytes": len(data),
                    "first": i == 0, "last": i == len(full) - 1, "run_bytes": total},
                    stall=pause if stall else None)
                done["chunks"] += 1
        if flush_after is not None:
            ctx.set(dut.flush, 1)

    async def request_consumer(ctx):
        for _ in runs:
            req = await stream_get(ctx, dut.o_req, stall=pause if stall else None)
            requests.append((req.addr, req.beats))

    async def beat_consumer(ctx):
        for beats in expected_beats:
            while not requests:
                await ctx.tick()
            addr, n = requests[0]
            assert n == beats
            for i in range(n):
                beat = await stream_get(ctx, dut.o_beat, stall=pause if stall else None)
                for b in range(bus):
                    if beat.strb >> b & 1:
                        memory[addr + i * bus + b] = beat.data >> (8 * b) & 0xFF
            requests.popleft()
        for _ in range(3):
            await ctx.tick()
        assert not ctx.get(dut.busy)
        assert not ctx.get(dut.o_beat.valid)

    async def clock(ctx):
        async for _ in ctx.tick():
            done["cycles"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(request_consumer)
    sim.add_testbench(beat_consumer)
    sim.add_testbench(clock, background=True)

    async def watchdog(ctx):
        for _ in range(5000):
            await ctx.tick()
        raise AssertionError("the packer stopped (deadlock?)")

    sim.add_testbench(watchdog, background=True)
    sim.run()
    return memory, expected_beats, done


def _expected(runs):
    memory = bytearray(MEM)
    for run in runs:
        for addr, data in run:
            memory[addr:addr + len(data)] = data
    return memory


@pytest.mark.parametrize("bus,chunk,stall", [(8, 32, False), (8, 32, True), (4, 16, True),
                                             (16, 8, True), (8, 1, False)])
def test_runs_are_written_exactly(bus, chunk, stall):
    rng = np.random.default_rng(bus * 100 + chunk)
    runs = _runs(rng, bus, chunk, 12)
    memory, _, done = _simulate(bus, chunk, runs, stall, seed=chunk)
    assert done["chunks"] == sum(len(r) for r in runs)
    assert memory == _expected(runs)


def test_small_chunks_stream_at_one_per_cycle():
    """64 one-byte rows as one run: 8 beats in about 64 cycles, not one burst per row."""
    data = bytes(range(1, 65))
    runs = [[(200 + i, data[i:i + 1]) for i in range(64)]]
    memory, beats, done = _simulate(8, 32, runs, stall=False, seed=0)
    assert beats == [8]
    assert memory[200:264] == data and memory.count(0) == MEM - 64
    assert done["cycles"] <= 64 + 8


def test_flush_finishes_an_open_run_unstrobed():
    rng = np.random.default_rng(7)
    runs = _runs(rng, 8, 32, 3)
    while len(runs[-1]) < 3:
        runs = _runs(rng, 8, 32, 3)
    memory, _, _ = _simulate(8, 32, runs, stall=True, seed=3, flush_after=2)
    partial = runs[:-1] + [runs[-1][:2]]
    assert memory == _expected(partial)


def test_bad_parameters():
    with pytest.raises(TypeError, match="Bus width must be a power of two"):
        WritePacker(3, 8)
    with pytest.raises(TypeError, match="Chunk size must be a positive integer"):
        WritePacker(8, 0)
