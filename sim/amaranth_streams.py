"""Stream helpers for Amaranth-simulator testbenches (async, Amaranth 0.5 style).

``stream_put`` / ``stream_get`` transfer one beat with the valid/ready handshake; the optional
``stall`` callable inserts idle cycles before a beat so tests exercise backpressure.
``run_with_watchdog`` runs testbenches on a clocked simulator and fails a test that hangs.
"""

from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "run_with_watchdog"]


def run_with_watchdog(dut, *testbenches, background=(), timeout=20_000):
    """Simulate ``dut`` with a 1 MHz clock until ``testbenches`` finish (``background`` ones
    run alongside without being waited for); AssertionError after ``timeout`` cycles (a
    deadlock)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)

    async def watchdog(ctx):
        for _ in range(timeout):
            await ctx.tick()
        raise AssertionError(f"simulation still running after {timeout} cycles (deadlock?)")

    sim.add_testbench(watchdog, background=True)
    sim.run()


async def stream_put(ctx, stream, payload, stall=None):
    """Drive one beat into ``stream`` and wait until it is accepted."""
    if stall is not None:
        for _ in range(stall()):
            await ctx.tick()
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, stall=None):
    """Accept one beat from ``stream`` and return its payload (as the simulator's value)."""
    if stall is not None:
        for _ in range(stall()):
            await ctx.tick()
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload
