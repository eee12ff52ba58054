"""Round-robin sharing of the accelerator's one AXI read master among its requesters.

Requester ``k`` (fetch, load, store parameters, the two KV-cache controllers) gets tag ``k``;
the reader returns beats in request order with their tag, and each beat goes to the consumer
of its tag. Every requester only asks for beats it can take at once (or takes them at its own
pace without blocking others: the load unit's aligners), so one slow consumer cannot starve
another.

Each requester's stream first passes a :class:`~octet.hdl.skid_buffer.SkidBuffer`, so the
arbiter and the reader start from registers: the requesters' own valid/ready/address logic
ends in the stage's flip-flops instead of running on through the grant and the burst
splitter. A request taken by the stage counts as taken by the reader (the requester must take
its beats). The beats pass one more such stage on their way back, so the consumers' ready
logic ends there instead of running on through the reader onto the bus. ``pending`` tells the
accelerator that a request or a beat is still held in a stage. Tested through the accelerator
tests.
"""

from amaranth.hdl import Cat, Signal
from amaranth.lib import wiring

from .skid_buffer import SkidBuffer

__all__ = ["connect_reads"]


def connect_reads(m, reader, requesters, consumers):
    """Arbitrate ``requesters`` (BusRequest streams) onto ``reader`` and route its beats.

    Parameters
    ----------
    m : Module
    reader : AxiReader
        With ``tag_width`` bits enough for ``len(requesters)`` tags.
    requesters : list of stream interfaces with ``{addr, beats}`` payloads
    consumers : list of stream interfaces with ``{data, error}`` payloads, same order

    Returns
    -------
    Signal
        ``pending``: a request is held in an input stage, not yet given to the reader, or a
        beat in the data stage, not yet taken by its consumer.
    """
    n = len(requesters)
    if n != len(consumers) or n > 1 << len(reader.i_req.payload.tag):
        raise ValueError(f"connect_reads needs one consumer per requester and at most "
                         f"{1 << len(reader.i_req.payload.tag)} of them, not {n}")
    staged = []
    for k, rq in enumerate(requesters):
        stage = SkidBuffer(rq.payload.shape())
        m.submodules[f"read_stage{k}"] = stage
        m.d.comb += [stage.i_stream.valid.eq(rq.valid), stage.i_stream.payload.eq(rq.payload),
                     rq.ready.eq(stage.i_stream.ready)]
        staged.append(stage)
    m.submodules.read_data_stage = beats = SkidBuffer(reader.o_data.payload.shape())
    wiring.connect(m, reader.o_data, beats.i_stream)
    pending = Signal(name="read_pending")
    m.d.comb += pending.eq(Cat(*(s.busy for s in staged), beats.busy).any())

    last = Signal(range(n), name="read_last")
    grant = Signal(range(n), name="read_grant")
    with m.Switch(last):
        for prev in range(n):
            with m.Case(prev):
                order = [(prev + 1 + k) % n for k in range(n)]
                for k in reversed(order):
                    with m.If(staged[k].o_stream.valid):
                        m.d.comb += grant.eq(k)
    for k, stage in enumerate(staged):
        rq = stage.o_stream
        with m.If(grant == k):
            m.d.comb += [reader.i_req.valid.eq(rq.valid),
                         reader.i_req.payload.addr.eq(rq.payload.addr),
                         reader.i_req.payload.beats.eq(rq.payload.beats),
                         reader.i_req.payload.tag.eq(k), rq.ready.eq(reader.i_req.ready)]
    with m.If(reader.i_req.valid & reader.i_req.ready):
        m.d.sync += last.eq(grant)
    beat = beats.o_stream
    for k, cons in enumerate(consumers):
        m.d.comb += [cons.valid.eq(beat.valid & (beat.payload.tag == k)),
                     cons.payload.data.eq(beat.payload.data),
                     cons.payload.error.eq(beat.payload.error)]
        with m.If(beat.payload.tag == k):
            m.d.comb += beat.ready.eq(cons.ready)
    return pending
