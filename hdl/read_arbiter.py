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

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib import wiring

from .skid_buffer import SkidBuffer

__all__ = ["connect_reads"]


def _or_all(values):
    result = values[0]
    for v in values[1:]:
        result = result | v
    return result


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

    # The choice is registered too, in two steps: a one-hot round-robin grant over the
    # stages' registered valids goes into ``granted`` (a stage's valid holds until it is
    # taken, so the granted request is still there a cycle later); the granted request then
    # goes into ``chosen``, which drives the reader. A request being taken is left out of
    # the next grant. (The reader takes a request at most every other cycle, so the extra
    # step costs no request rate.)
    last = Signal(n, name="read_last", init=1 << (n - 1))   # one-hot: the last taken
    grant = Signal(n, name="read_grant")
    granted = Signal(n, name="read_granted")
    chosen_valid = Signal(name="read_chosen_valid")
    chosen = Signal.like(reader.i_req.payload, name="read_chosen")
    take = Signal(name="read_take")
    m.d.comb += [take.eq(~chosen_valid | reader.i_req.ready),
                 reader.i_req.valid.eq(chosen_valid), reader.i_req.payload.eq(chosen)]
    # The grant is worked out both ways from flip-flops (the granted request taken this
    # cycle or not), and ``take`` only picks one: it does not run through the round robin.
    grant_taken = Signal(n, name="read_grant_taken")
    for grant_k, valids in ((grant, [s.o_stream.valid for s in staged]),
                            (grant_taken, [s.o_stream.valid & ~granted[k]
                                           for k, s in enumerate(staged)])):
        for k in range(n):
            # k wins if it is valid and no stage between the last taken one and k is.
            after = []
            for p in range(n):
                between = [(p + 1 + j) % n for j in range((k - p - 1) % n)]
                after.append(last[p] & Cat(*(~valids[j] for j in between),
                                           Const(1, 1)).all())
            m.d.comb += grant_k[k].eq(valids[k] & Cat(*after).any())
    m.d.sync += granted.eq(Mux(take, grant_taken, grant))
    picked = Signal.like(reader.i_req.payload, name="read_picked")
    fields = []
    for k, stage in enumerate(staged):
        rq = stage.o_stream
        m.d.comb += rq.ready.eq(take & granted[k])
        one = Signal.like(reader.i_req.payload, name=f"read_offer{k}")
        m.d.comb += [one.addr.eq(rq.payload.addr), one.beats.eq(rq.payload.beats),
                     one.tag.eq(k)]
        fields.append(Mux(granted[k], one.as_value(), 0))
    m.d.comb += picked.eq(_or_all(fields))
    with m.If(take):
        m.d.sync += [chosen_valid.eq(granted.any()), chosen.eq(picked)]
        with m.If(granted.any()):
            m.d.sync += last.eq(granted)
    m.d.comb += pending.eq(Cat(*(s.busy for s in staged), beats.busy, chosen_valid).any())

    beat = beats.o_stream
    for k, cons in enumerate(consumers):
        m.d.comb += [cons.valid.eq(beat.valid & (beat.payload.tag == k)),
                     cons.payload.data.eq(beat.payload.data),
                     cons.payload.error.eq(beat.payload.error)]
        with m.If(beat.payload.tag == k):
            m.d.comb += beat.ready.eq(cons.ready)
    return pending
