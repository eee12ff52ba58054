"""Amaranth-simulator tests of the processing element (``octet.hdl.pe``).

Checks the timing contract (product registered, then added: ``psum_out`` for an activation
presented at cycle t appears at cycle t + 2), the activation/bank forwarding with the bank one
cycle ahead, and the two weight banks. The PE is driven as in the array: a testbench presents
the activation and its bank at ``a_next`` / ``bank_next`` and a register (``with_lead``)
delivers the activation to ``a_in`` one cycle later. Reference: Python integer arithmetic,
i.e. one term of ``octet.sim.golden.matmul_int32`` (``psum + a * w``), wrapped to the PE's
partial-sum width.
"""

import gc

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from octet.hdl.pe import ProcessingElement

PSUM_BITS = 18


def wrap(value, bits=PSUM_BITS):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def with_lead(pe):
    """``pe`` with the register the array's skew line or left neighbour provides:
    ``a_in`` is ``a_next`` one cycle later."""
    m = Module()
    m.submodules.pe = pe
    m.d.sync += pe.a_in.eq(pe.a_next)
    return m


def run(dut, *testbenches):
    sim = Simulator(with_lead(dut))
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    sim.run()


def set_weight(ctx, pe, bank, value):
    """Present ``value`` with the multiples the array computes at its edge (3w, -w) and
    raise bank ``bank``'s write enable."""
    ctx.set(pe.w_data, value)
    ctx.set(pe.w3_data, 3 * value)
    ctx.set(pe.wneg_data, -value)
    ctx.set(pe.we1 if bank else pe.we0, 1)


async def write_weight(ctx, pe, bank, value):
    set_weight(ctx, pe, bank, value)
    await ctx.tick()
    ctx.set(pe.we0, 0)
    ctx.set(pe.we1, 0)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_constructor_checks():
    with pytest.raises(TypeError, match=r"PE partial sum width must be an integer >= 16, "
                                        r"not 15"):
        ProcessingElement(15)
    with pytest.raises(TypeError, match="partial sum width"):
        ProcessingElement(16.0)
    assert ProcessingElement(16).psum_bits == 16
    gc.collect()  # half-built components are reported unused when collected: do it here


def test_psum_two_cycles_later(seed):
    """A stream of random (a, psum, bank) inputs; each result is checked 2 cycles after its
    activation reaches ``a_in``.

    Reference: ``psum + a * w[bank]`` in Python ints (the golden model's matmul term).
    """
    rng = np.random.default_rng(seed)
    dut = ProcessingElement(PSUM_BITS)
    weights = [-128, 127]
    n = 200
    a = rng.integers(-128, 128, n)
    banks = rng.integers(0, 2, n)
    lim = 1 << (PSUM_BITS - 2)
    psum = rng.integers(-lim, lim, n)
    a[:4], banks[:4] = -128, 0  # the largest product, -128 * -128

    async def driver(ctx):
        for bank, w in enumerate(weights):
            await write_weight(ctx, dut, bank, w)
        for t in range(n):
            ctx.set(dut.a_next, int(a[t]))
            ctx.set(dut.bank_next, int(banks[t]))
            ctx.set(dut.psum_in, int(psum[t]))
            await ctx.tick()

    async def checker(ctx):
        await ctx.tick().repeat(2)  # the two weight writes
        for t in range(n + 2):
            if 1 <= t <= n:  # bank_out: bank_next registered once, one cycle ahead of a_out
                assert ctx.get(dut.bank_out) == banks[t - 1]
            if t >= 2:  # a_out: a_in (a_next registered) registered once more
                assert ctx.get(dut.a_out) == a[t - 2]
            if t >= 3:
                # psum_in of t - 1 (the driver holds its last one) plus the product of the
                # activation in a_in at t - 2: the column's skew feeds the partial sum one
                # cycle after the activation.
                psum_in = psum[min(t - 1, n - 1)]
                expect = wrap(int(psum_in) + int(a[t - 3]) * weights[banks[t - 3]])
                assert ctx.get(dut.psum_out) == expect, f"cycle {t}"
            await ctx.tick()

    run(dut, driver, checker)


def test_result_at_t_plus_2_with_matching_skew():
    """Activation at t, partial sum at t + 1 (as in the array): psum_out at t + 2."""
    dut = ProcessingElement(PSUM_BITS)

    async def tb(ctx):
        await write_weight(ctx, dut, 0, -7)
        ctx.set(dut.a_next, 9)
        await ctx.tick()                       # t - 1: a_in and the bank select load
        ctx.set(dut.a_next, 0)
        await ctx.tick()                       # t: product register loads 9 * -7
        ctx.set(dut.psum_in, 1000)
        assert ctx.get(dut.psum_out) == 0      # nothing yet at t + 1
        await ctx.tick()                       # t + 1: psum register loads 1000 + product
        ctx.set(dut.psum_in, 0)
        assert ctx.get(dut.psum_out) == 1000 - 63
        await ctx.tick()
        assert ctx.get(dut.psum_out) == 0

    run(dut, tb)


def test_bank_switching_and_isolation():
    """Writing one bank leaves the other intact; activations choose the bank per cycle."""
    dut = ProcessingElement(16)

    async def product(ctx, a, bank):
        ctx.set(dut.a_next, a)
        ctx.set(dut.bank_next, bank)
        ctx.set(dut.psum_in, 0)
        await ctx.tick().repeat(3)
        return ctx.get(dut.psum_out)

    async def tb(ctx):
        await write_weight(ctx, dut, 0, 3)
        await write_weight(ctx, dut, 1, -5)
        assert await product(ctx, 10, 0) == 30
        assert await product(ctx, 10, 1) == -50
        assert await product(ctx, 0, 1) == 0  # a zero activation selects bank 0: same product
        # Overwrite bank 1 repeatedly; bank 0 must not change (and vice versa).
        for w in (127, -128, 0, 42):
            await write_weight(ctx, dut, 1, w)
            assert await product(ctx, -128, 0) == -384
            assert await product(ctx, -128, 1) == -128 * w
        await write_weight(ctx, dut, 0, -128)
        assert await product(ctx, -128, 1) == -128 * 42
        assert await product(ctx, -128, 0) == 16384  # the largest product fits 16 bits

    run(dut, tb)


def test_weight_write_while_computing():
    """A write to bank 1 in the same cycle bank 1 is read returns the old weight.

    This is the array's drain rule: a row may be rewritten in the cycle of its last read.
    """
    dut = ProcessingElement(PSUM_BITS)

    async def tb(ctx):
        await write_weight(ctx, dut, 1, 11)
        ctx.set(dut.a_next, 2)
        ctx.set(dut.bank_next, 1)
        await ctx.tick()                     # a_in and the bank select load
        set_weight(ctx, dut, 1, -11)         # written in the cycle bank 1 is read
        await ctx.tick()
        ctx.set(dut.we1, 0)
        await ctx.tick()
        assert ctx.get(dut.psum_out) == 22  # old weight
        await ctx.tick()
        assert ctx.get(dut.psum_out) == -22  # new weight, a_in still 2

    run(dut, tb)


def test_every_product_exact():
    """All 256 x 256 int8 products through both banks (``psum_in`` 0): the partial-product
    datapath is exact for every operand pair, including -128 * -128."""
    dut = ProcessingElement(16)
    values = list(range(-128, 128))

    async def tb(ctx):
        for w in values:
            bank = w & 1
            await write_weight(ctx, dut, bank, w)
            ctx.set(dut.bank_next, bank)
            for t, a in enumerate(values + [0, 0]):
                ctx.set(dut.a_next, a)
                await ctx.tick()
                if t >= 2:  # the product of the activation presented three ticks ago
                    assert ctx.get(dut.psum_out) == wrap(values[t - 2] * w, 16), (t, w)

    run(dut, tb)
