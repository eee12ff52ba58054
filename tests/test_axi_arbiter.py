"""Amaranth-simulator test of ``AxiArbiter`` in front of ``AxiBram``.

Reference: a bytearray per master. Two testbench AXI4 masters write and read random INCR
bursts (random lengths and strobes) in disjoint halves of the memory at the same time, so
the arbiter interleaves their bursts; every read burst must return what that master wrote,
every response must be OKAY, and a burst past the end of the memory must answer DECERR on
every beat without writing.
"""

import random

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from octet.hdl.axi_arbiter import AxiArbiter
from octet.hdl.axi_bram import AxiBram

SIZE = 2048
B = 8


async def _write(ctx, port, addr, words, strobes):
    ctx.set(port.awaddr, addr)
    ctx.set(port.awlen, len(words) - 1)
    ctx.set(port.awsize, 3)
    ctx.set(port.awburst, 1)
    ctx.set(port.awvalid, 1)
    await ctx.tick().until(port.awready)
    ctx.set(port.awvalid, 0)
    for i, (word, strobe) in enumerate(zip(words, strobes, strict=True)):
        ctx.set(port.wdata, word)
        ctx.set(port.wstrb, strobe)
        ctx.set(port.wlast, i == len(words) - 1)
        ctx.set(port.wvalid, 1)
        await ctx.tick().until(port.wready)
    ctx.set(port.wvalid, 0)
    ctx.set(port.bready, 1)
    (resp,) = await ctx.tick().sample(port.bresp).until(port.bvalid)
    ctx.set(port.bready, 0)
    return resp


async def _send_ar(ctx, port, addr, beats):
    """The read address handshake of an INCR burst of ``beats`` 8-byte beats."""
    ctx.set(port.araddr, addr)
    ctx.set(port.arlen, beats - 1)
    ctx.set(port.arsize, 3)
    ctx.set(port.arburst, 1)
    ctx.set(port.arvalid, 1)
    await ctx.tick().until(port.arready)
    ctx.set(port.arvalid, 0)


async def _read(ctx, port, addr, beats):
    await _send_ar(ctx, port, addr, beats)
    ctx.set(port.rready, 1)
    out = []
    for i in range(beats):
        data, resp, last = await ctx.tick().sample(port.rdata, port.rresp, port.rlast) \
            .until(port.rvalid)
        out.append((data, resp))
        assert last == (i == beats - 1)
    ctx.set(port.rready, 0)
    return out


def test_two_masters_share_the_memory(seed):
    m = Module()
    m.submodules.arbiter = arbiter = AxiArbiter(2, 32, 8 * B, 4)
    m.submodules.bram = bram = AxiBram(SIZE, 8 * B)
    wiring.connect(m, arbiter.m_axi, bram.s_axi)
    finished = []

    def master(k):
        rng = random.Random(seed * 10 + k)
        base = k * SIZE // 2
        model = bytearray(SIZE // 2)

        async def bench(ctx):
            port = arbiter.s_axi[k]
            for _ in range(12):
                beats = rng.randint(1, 8)
                start = rng.randrange(0, SIZE // 2 // B - beats + 1) * B
                words = [rng.getrandbits(8 * B) for _ in range(beats)]
                strobes = [rng.getrandbits(B) for _ in range(beats)]
                assert await _write(ctx, port, base + start, words, strobes) == 0
                for i, (word, strobe) in enumerate(zip(words, strobes, strict=True)):
                    for lane in range(B):
                        if strobe >> lane & 1:
                            model[start + i * B + lane] = word >> (8 * lane) & 0xFF
                rstart = rng.randrange(0, SIZE // 2 // B - beats + 1) * B
                got = await _read(ctx, port, base + rstart, beats)
                expect = [int.from_bytes(model[rstart + i * B:rstart + (i + 1) * B], "little")
                          for i in range(beats)]
                assert got == [(e, 0) for e in expect]
            if k == 1:      # past the end: DECERR on every beat, nothing written
                assert await _write(ctx, port, SIZE - B, [1, 2], [0xFF, 0xFF]) == 3
                assert [r for _, r in await _read(ctx, port, SIZE - B, 2)] == [3, 3]
                got = await _read(ctx, port, SIZE - B, 1)
                assert got == [(int.from_bytes(model[-B:], "little"), 0)]
            finished.append(k)
        return bench

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(master(0))
    sim.add_testbench(master(1))
    sim.run()
    assert sorted(finished) == [0, 1]
