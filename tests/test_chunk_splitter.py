"""Amaranth-simulator tests of ``ChunkSplitter``.

Reference: a Python model of the pieces (``_pieces``): each chunk of ``n`` valid bytes leaves
as ``ceil(n / P)`` pieces (one if ``n`` is 0) with the chunk's bytes, address, flags and run
length as the module's docstring defines them. Random chunks pass with random stalls on both
sides; every piece must come out once, in order, equal to the model's.
"""

import random

import pytest
from amaranth.hdl import Module, Signal

from octet.hdl.chunk_splitter import ChunkSplitter
from octet.sim.amaranth_streams import run_with_watchdog as _run
from octet.sim.amaranth_streams import stream_get, stream_put


def _pieces(chunk, W, P):
    n = chunk["nbytes"]
    count = max(1, -(-n // P))
    padded = chunk["data"]        # bytes beyond W read as zero
    out = []
    for p in range(count):
        left = n - p * P
        out.append({"data": (padded >> (8 * P * p)) & ((1 << (8 * P)) - 1),
                    "addr": (chunk["addr"] + p * P) & 0xFFFFFFFF,
                    "nbytes": min(P, left),
                    "first": chunk["first"] if p == 0 else 0,
                    "last": chunk["last"] if p == count - 1 else 0,
                    "run_bytes": chunk["run_bytes"]})
    return out


def _clocked(dut):
    """The design with a register of its own, so that a splitter with one piece per chunk
    (plain wires) still has the clock domain the testbenches tick."""
    m = Module()
    m.submodules.dut = dut
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)
    return m


def _as_dict(view):
    return {k: int(getattr(view, k)) for k in ("data", "addr", "nbytes", "first", "last",
                                                 "run_bytes")}


@pytest.mark.parametrize("W, P", [(32, 8), (12, 8), (8, 8), (16, 4)])
@pytest.mark.parametrize("p_in, p_out", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.4, 0.6)])
def test_pieces_match_the_model(seed, W, P, p_in, p_out):
    rng = random.Random(seed * 1000 + W * 10 + P + int(10 * p_in) * 7 + int(10 * p_out))
    dut = ChunkSplitter(W, P)
    chunks = []
    for _ in range(150):
        n = rng.choice([0, W, rng.randint(0, W), min(W, P), rng.randint(1, P)])
        chunks.append({"data": rng.getrandbits(8 * W), "addr": rng.choice(
                           [rng.getrandbits(32), 0xFFFFFFFF - rng.randrange(64)]),
                       "nbytes": n, "first": rng.getrandbits(1), "last": rng.getrandbits(1),
                       "run_bytes": rng.getrandbits(16),
                       "last_piece": max(1, -(-n // P)) - 1})
    expected = [piece for c in chunks for piece in _pieces(c, W, P)]
    got = []

    def stall(p):
        return (lambda: rng.randint(1, 3) if rng.random() < p else 0) if p else None

    async def producer(ctx):
        for c in chunks:
            if W == P:
                c = {k: v for k, v in c.items() if k != "last_piece"}
            await stream_put(ctx, dut.i_chunk, c, stall(p_in))

    async def consumer(ctx):
        for _ in expected:
            got.append(_as_dict(await stream_get(ctx, dut.o_piece, stall(p_out))))

    _run(_clocked(dut), producer, consumer)
    assert got == expected


def test_one_piece_per_cycle():
    """Without stalls a 32-byte chunk leaves as four pieces in four consecutive cycles."""
    dut = ChunkSplitter(32, 8)
    seen = []

    async def tb(ctx):
        ctx.set(dut.i_chunk.valid, 1)
        ctx.set(dut.i_chunk.payload, {"data": int.from_bytes(bytes(range(32)), "little"),
                                      "addr": 0x100, "nbytes": 32, "first": 1, "last": 1,
                                      "run_bytes": 32, "last_piece": 3})
        ctx.set(dut.o_piece.ready, 1)
        for _ in range(4):
            seen.append((ctx.get(dut.o_piece.valid), ctx.get(dut.i_chunk.ready),
                         _as_dict(ctx.get(dut.o_piece.payload))))
            await ctx.tick()

    _run(dut, tb)
    assert [v for v, _, _ in seen] == [1, 1, 1, 1]
    assert [r for _, r, _ in seen] == [0, 0, 0, 1]
    assert [p["addr"] for _, _, p in seen] == [0x100, 0x108, 0x110, 0x118]
    assert [(p["first"], p["last"]) for _, _, p in seen] == [(1, 0), (0, 0), (0, 0), (0, 1)]
    assert seen[2][2]["data"] == int.from_bytes(bytes(range(16, 24)), "little")


def test_last_piece_index_matches_its_definition():
    """The RTL helper against ceil(n / P) - 1 (0 for n = 0), for every byte count."""
    from amaranth.hdl import Signal
    from amaranth.sim import Simulator

    from octet.hdl.chunk_splitter import last_piece_index
    n = Signal(range(65))
    out = Signal(4)
    m = Module()
    m.d.comb += out.eq(last_piece_index(n, 8))
    sim = Simulator(m)
    seen = []

    async def tb(ctx):
        for v in range(65):
            ctx.set(n, v)
            seen.append(ctx.get(out))

    sim.add_testbench(tb)
    sim.run()
    assert seen == [max(1, -(-v // 8)) - 1 for v in range(65)]
    with pytest.raises(ValueError, match="Piece size must be a power of two, not 12"):
        last_piece_index(n, 12)


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="Chunk size must be a positive integer, not 0"):
        ChunkSplitter(0, 1)
    with pytest.raises(TypeError, match="Piece size must be a positive integer, not 'x'"):
        ChunkSplitter(8, "x")
    with pytest.raises(ValueError, match="Piece size 16 must not exceed the chunk size 8"):
        ChunkSplitter(8, 16)
    with pytest.raises(ValueError, match="power of two when chunks are split, not 12"):
        ChunkSplitter(48, 12)
    ChunkSplitter(12, 12)            # one piece per chunk: any size
