"""Amaranth-simulator tests of ``CreditStage``.

Reference: the list of beats put in. The producer testbench keeps the credit count a real
producer keeps (``CAPACITY`` at start, one less per beat sent, one more per ``freed`` pulse)
and sends only with a credit, stalling at random; the consumer stalls at random. Every beat
must come out once, in order; without stalls one beat must pass per cycle; the stage's outputs
must not depend combinationally on its inputs. With a ``flag`` decode, ``o_flag`` must equal
the decode of the output payload whenever a beat is offered. With ``half_rate`` the same holds
at one beat per two cycles.
"""

import random

import pytest
from amaranth.sim import Simulator

from octet.hdl.credit_stage import CreditStage
from octet.sim.amaranth_streams import run_with_watchdog as _run
from octet.sim.amaranth_streams import stream_get


def _producer(dut, beats, send_p, rng, cycles=None):
    async def producer(ctx):
        credits = CreditStage.CAPACITY
        k = cycle = 0
        while k < len(beats):
            send = credits > 0 and rng.random() < send_p
            ctx.set(dut.i_stream.valid, send)
            if send:
                ctx.set(dut.i_stream.payload, beats[k])
            freed = ctx.get(dut.i_stream.freed)
            await ctx.tick()
            credits += freed - send
            assert 0 <= credits <= CreditStage.CAPACITY
            if send:
                if cycles is not None:
                    cycles.append(cycle)
                k += 1
            cycle += 1
        ctx.set(dut.i_stream.valid, 0)
    return producer


@pytest.mark.parametrize("half_rate", [False, True])
@pytest.mark.parametrize("p_in, p_out", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.4, 0.6),
                                         (0.7, 0.3)])
def test_random_stalls(seed, p_in, p_out, half_rate):
    rng = random.Random(seed * 100 + int(10 * p_in) * 10 + int(10 * p_out))
    dut = CreditStage(16, half_rate=half_rate)
    beats = [rng.randrange(1 << 16) for _ in range(400)]
    got = []

    def stall(p):
        return (lambda: rng.randint(1, 3) if rng.random() < p else 0) if p else None

    async def consumer(ctx):
        for _ in beats:
            got.append(await stream_get(ctx, dut.o_stream, stall(p_out)))
        await ctx.tick()
        assert not ctx.get(dut.busy)

    _run(dut, _producer(dut, beats, 1.0 - p_in, rng), consumer)
    assert got == beats


@pytest.mark.parametrize("half_rate", [False, True])
def test_flag_follows_payload(seed, half_rate):
    rng = random.Random(seed)
    dut = CreditStage(16, flag=lambda payload: payload[:3] == 5, half_rate=half_rate)
    beats = [rng.randrange(1 << 16) for _ in range(400)]
    got = []
    checked = []

    async def consumer(ctx):
        for _ in beats:
            got.append(await stream_get(ctx, dut.o_stream, lambda: rng.randint(0, 2)))

    async def checker(ctx):
        async for _, _, valid, payload, flag in ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.payload, dut.o_flag):
            if valid:
                assert flag == ((payload & 7) == 5)
                checked.append(flag)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_producer(dut, beats, 0.6, rng))
    sim.add_testbench(consumer)
    sim.add_testbench(checker, background=True)
    sim.run()
    assert got == beats
    assert any(checked) and not all(checked)


@pytest.mark.parametrize("half_rate", [False, True])
def test_full_throughput(half_rate):
    """One beat per cycle, or with half_rate one per two cycles, from the first on."""
    dut = CreditStage(8, half_rate=half_rate)
    n = 64
    sent, taken = [], []

    async def consumer(ctx):
        ctx.set(dut.o_stream.ready, 1)
        cycle = 0
        while len(taken) < n:
            valid, payload = ctx.get(dut.o_stream.valid), ctx.get(dut.o_stream.payload)
            await ctx.tick()
            if valid:
                assert payload == len(taken)
                taken.append(cycle)
            cycle += 1

    _run(dut, _producer(dut, list(range(n)), 1.0, random.Random(0), sent), consumer)
    if not half_rate:
        assert sent == list(range(n))
    assert taken == [(2 * k if half_rate else k) + 1 for k in range(n)]


@pytest.mark.parametrize("half_rate", [False, True])
def test_outputs_are_registers(half_rate):
    dut = CreditStage(8, half_rate=half_rate)

    async def tb(ctx):
        ctx.set(dut.i_stream.valid, 1)
        ctx.set(dut.i_stream.payload, 5)
        await ctx.tick()
        ctx.set(dut.i_stream.valid, 0)
        before = [ctx.get(s) for s in (dut.o_stream.valid, dut.o_stream.payload,
                                       dut.i_stream.freed, dut.busy)]
        for ready, valid, payload in ((1, 1, 9), (0, 0, 3), (1, 0, 0)):
            ctx.set(dut.o_stream.ready, ready)
            ctx.set(dut.i_stream.valid, valid)
            ctx.set(dut.i_stream.payload, payload)
            assert [ctx.get(s) for s in (dut.o_stream.valid, dut.o_stream.payload,
                                         dut.i_stream.freed, dut.busy)] == before
        assert before == [1, 5, 0, 1]

    _run(dut, tb)


def test_rejects_non_shape():
    with pytest.raises(TypeError, match="must be a shape"):
        CreditStage("wide")


def test_rejects_non_callable_flag():
    with pytest.raises(TypeError, match="flag must be a callable"):
        CreditStage(8, flag=3)


def test_half_rate_output_waits_until_empty():
    """With half_rate a taken beat's register empties first: the next beat, already held,
    comes out a cycle later, so the consumer's ready never loads the output register."""
    dut = CreditStage(8, half_rate=True)
    seen = []

    async def tb(ctx):
        ctx.set(dut.o_stream.ready, 1)
        for cycle in range(5):
            ctx.set(dut.i_stream.valid, cycle < 2)
            ctx.set(dut.i_stream.payload, cycle + 1)
            seen.append((ctx.get(dut.o_stream.valid), ctx.get(dut.o_stream.payload)))
            await ctx.tick()

    _run(dut, tb)
    # Beats 1 and 2 are sent in cycles 0 and 1; beat 1 is offered (and taken) in cycle 1,
    # the register is empty in cycle 2, and beat 2 follows from the holding register.
    assert [v for v, _ in seen] == [0, 1, 0, 1, 0]
    assert [p for v, p in seen if v] == [1, 2]


def test_rejects_non_bool_half_rate():
    with pytest.raises(TypeError, match="half_rate must be a bool, not 1"):
        CreditStage(8, half_rate=1)
