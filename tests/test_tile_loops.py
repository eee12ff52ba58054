"""Amaranth-simulator tests of the GEMM tile-walk loop engine (``octet.hdl.tile_loops``).

Random walks (random counts, bases and steps, with address wrap-around at 2**16) advanced
with random idle cycles; at every step the address and flags are compared with the closed
formula ``base + nt*n_step + kt*k_step + i*i_step`` (mod 2**16) of the ISA's GEMM. Back-to-back
walks check that ``start`` reloads everything. Also the constructor's argument checks.
"""

import gc

import numpy as np
import pytest
from amaranth.sim import Simulator

from octet.hdl.tile_loops import TileLoops


def reference(base, inner, k_tiles, n_tiles, i_step, k_step, n_step):
    for nt in range(n_tiles):
        for kt in range(k_tiles):
            for i in range(inner):
                yield ((base + nt * n_step + kt * k_step + i * i_step) & 0xFFFF,
                       i == inner - 1, kt == k_tiles - 1, nt == n_tiles - 1, kt == 0)


def walks(rng, count):
    out = [(0xFFF0, 3, 2, 2, 0x0008, 0x0100, 0xF000),  # wraps around 2**16
           (5, 1, 1, 1, 1, 1, 1), (7, 1, 3, 1, 0, 4, 0), (0, 4, 1, 3, 1, 0, 9)]
    for _ in range(count):
        out.append((int(rng.integers(0, 1 << 16)), int(rng.integers(1, 6)),
                    int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                    *(int(rng.integers(0, 1 << 16)) for _ in range(3))))
    return out


def test_walks_match_formula(seed):
    rng = np.random.default_rng(seed)
    dut = TileLoops()
    cases = walks(rng, 30)

    async def tb(ctx):
        for base, inner, k_tiles, n_tiles, i_step, k_step, n_step in cases:
            for port, value in (("base", base), ("inner", inner), ("k_tiles", k_tiles),
                                ("n_tiles", n_tiles), ("i_step", i_step), ("k_step", k_step),
                                ("n_step", n_step)):
                ctx.set(getattr(dut, port), value)
            ctx.set(dut.start, 1)
            ctx.set(dut.advance, 1)  # ignored while starting
            await ctx.tick()
            ctx.set(dut.start, 0)
            expected = list(reference(base, inner, k_tiles, n_tiles, i_step, k_step, n_step))
            for n, (addr, last_i, last_kt, last_nt, first_kt) in enumerate(expected):
                ctx.set(dut.advance, 0)
                for _ in range(int(rng.integers(0, 3))):  # idle cycles change nothing
                    await ctx.tick()
                got = (ctx.get(dut.addr), ctx.get(dut.last_i), ctx.get(dut.last_kt),
                       ctx.get(dut.last_nt), ctx.get(dut.first_kt), ctx.get(dut.done))
                done = n == len(expected) - 1
                assert got == (addr, last_i, last_kt, last_nt, first_kt, done), \
                    (base, inner, k_tiles, n_tiles, n)
                assert ctx.get(dut.last_ikt) == (last_i and last_kt)
                ctx.set(dut.advance, 1)
                await ctx.tick()
            ctx.set(dut.advance, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_constructor_checks():
    with pytest.raises(TypeError, match=r"Loop inner_bits must be a positive integer, not 0"):
        TileLoops(0)
    with pytest.raises(TypeError, match=r"Loop tile_bits must be a positive integer, not 2.0"):
        TileLoops(16, 2.0)
    gc.collect()
