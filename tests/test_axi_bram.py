"""Amaranth-simulator test of ``AxiBram``'s read throughput and stalls.

Reference: the words written before each read (through the same AXI port). A read burst with
RREADY held high must deliver one beat per cycle after its first; with RREADY dropped at
random, every beat must still arrive once, in order, with RLAST on the last.
"""

import random

from amaranth.sim import Simulator

from octet.hdl.axi_bram import AxiBram
from tests.test_axi_arbiter import _send_ar, _write

SIZE = 1024
B = 8


async def _read_timed(ctx, port, addr, beats, rng=None):
    """Read a burst; return [(cycle, data, last)] of the beats, cycles from the AR handshake."""
    await _send_ar(ctx, port, addr, beats)
    out, cycle = [], 0
    while len(out) < beats:
        ready = rng is None or rng.random() < 0.6
        ctx.set(port.rready, ready)
        *_, valid, data, last = await ctx.tick().sample(port.rvalid, port.rdata, port.rlast)
        if valid and ready:
            out.append((cycle, data, last))
        cycle += 1
    ctx.set(port.rready, 0)
    return out


def _run(bench):
    dut = AxiBram(SIZE, 8 * B)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    done = []

    async def tb(ctx):
        await bench(ctx, dut.s_axi)
        done.append(1)
    sim.add_testbench(tb)
    sim.run_until(1e-2)
    assert done, "the testbench did not finish (the memory hung)"


def test_read_burst_one_beat_per_cycle():
    words = [0x0101010101010101 * (k + 1) for k in range(16)]

    async def bench(ctx, port):
        assert await _write(ctx, port, 64, words, [0xFF] * 16) == 0
        got = await _read_timed(ctx, port, 64, 16)
        assert [d for _, d, _ in got] == words
        assert [last for _, _, last in got] == [0] * 15 + [1]
        cycles = [c for c, _, _ in got]
        assert cycles == list(range(cycles[0], cycles[0] + 16)), cycles
    _run(bench)


def test_read_bursts_with_random_rready(seed):
    rng = random.Random(seed)

    async def bench(ctx, port):
        for _ in range(10):
            beats = rng.randint(1, 12)
            start = rng.randrange(0, SIZE // B - beats + 1) * B
            words = [rng.getrandbits(8 * B) for _ in range(beats)]
            assert await _write(ctx, port, start, words, [0xFF] * beats) == 0
            got = await _read_timed(ctx, port, start, beats, rng)
            assert [d for _, d, _ in got] == words
            assert [last for _, _, last in got] == [0] * (beats - 1) + [1]
    _run(bench)
