"""Stream helpers for Amaranth-simulator testbenches (async, Amaranth 0.5 style).

``stream_put`` / ``stream_get`` transfer one beat with the valid/ready handshake; the optional
``stall`` callable inserts idle cycles before a beat so tests exercise backpressure.
"""

__all__ = ["stream_put", "stream_get"]


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
