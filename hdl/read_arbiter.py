"""Round-robin sharing of the accelerator's one AXI read master among its requesters.

Requester ``k`` (fetch, load, store parameters, the two KV-cache controllers) gets tag ``k``;
the reader returns beats in request order with their tag, and each beat goes to the consumer
of its tag. Every requester only asks for beats it can take at once (or takes them at its own
pace without blocking others: the load unit's aligners), so one slow consumer cannot starve
another. Tested through the accelerator tests.
"""

from amaranth.hdl import Signal

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
    """
    n = len(requesters)
    if n != len(consumers) or n > 1 << len(reader.i_req.payload.tag):
        raise ValueError(f"connect_reads needs one consumer per requester and at most "
                         f"{1 << len(reader.i_req.payload.tag)} of them, not {n}")
    last = Signal(range(n), name="read_last")
    grant = Signal(range(n), name="read_grant")
    with m.Switch(last):
        for prev in range(n):
            with m.Case(prev):
                order = [(prev + 1 + k) % n for k in range(n)]
                for k in reversed(order):
                    with m.If(requesters[k].valid):
                        m.d.comb += grant.eq(k)
    for k, rq in enumerate(requesters):
        with m.If(grant == k):
            m.d.comb += [reader.i_req.valid.eq(rq.valid),
                         reader.i_req.payload.addr.eq(rq.payload.addr),
                         reader.i_req.payload.beats.eq(rq.payload.beats),
                         reader.i_req.payload.tag.eq(k), rq.ready.eq(reader.i_req.ready)]
    with m.If(reader.i_req.valid & reader.i_req.ready):
        m.d.sync += last.eq(grant)
    for k, cons in enumerate(consumers):
        m.d.comb += [cons.valid.eq(reader.o_data.valid & (reader.o_data.payload.tag == k)),
                     cons.payload.data.eq(reader.o_data.payload.data),
                     cons.payload.error.eq(reader.o_data.payload.error)]
        with m.If(reader.o_data.payload.tag == k):
            m.d.comb += reader.o_data.ready.eq(cons.ready)
