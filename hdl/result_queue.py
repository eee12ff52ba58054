"""Credit-managed output queue for a free-running, fixed-latency pipeline.

Stalling a whole systolic array on output backpressure would fan one enable out to every
register of every PE, which costs timing on an FPGA. Instead the pipeline never stops: an input
is admitted only while the queue holds a credit for its result, and each result lands in a FIFO
deep enough for everything in flight. With ``depth >= latency + QUEUE_SLACK`` an always-ready
consumer sees one result per cycle.

Tested through the array and requantizer tests (random stalls on the output stream).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ResultQueue", "QUEUE_SLACK"]

#: Credits beyond the pipeline latency needed for full throughput: one for the FIFO's write,
#: one for its registered read port, one for the cycle the consumer takes the beat.
QUEUE_SLACK = 3


class ResultQueue(wiring.Component):
    """FIFO plus credit counter in front of a stream output.

    Parameters
    ----------
    layout : Layout
        Payload layout of the results.
    depth : int
        Number of results that may be in flight or queued at once.

    Ports
    -----
    credit : Out(1)
        High when one more input may be admitted into the pipeline this cycle (a register).
    credit_full : Out(1)
        No input is in flight or queued (all credits returned; a register).
    admit : In(1)
        The pipeline admitted an input this cycle (only allowed while ``credit`` is high).
    result : In(layout)
        Result leaving the pipeline.
    result_valid : In(1)
        ``result`` is valid this cycle; it is written to the FIFO.
    o_stream : Out(stream.Signature(layout))
        Results in order, with backpressure.
    """

    def __init__(self, layout, depth):
        if not isinstance(depth, int) or depth < 2:
            raise TypeError(f"Result queue depth must be an integer >= 2, not {depth!r}")
        self._layout = data.Layout.cast(layout)
        self._depth = depth
        super().__init__({
            "credit": Out(1, init=1),
            "credit_full": Out(1, init=1),
            "admit": In(1),
            "result": In(self._layout),
            "result_valid": In(1),
            "o_stream": Out(stream.Signature(self._layout)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = queue = fifo.SyncFIFOBuffered(width=self._layout.size,
                                                          depth=self._depth)
        pending = Signal(range(self._depth + 1))
        popped = self.o_stream.valid & self.o_stream.ready

        m.d.comb += [
            queue.w_data.eq(self.result.as_value()),
            queue.w_en.eq(self.result_valid),
            self.o_stream.payload.eq(queue.r_data),
            self.o_stream.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.o_stream.ready),
        ]
        # The flags are registers, computed from the next count (the admit decision that
        # reads ``credit`` does not wait for a compare).
        pending_next = Signal.like(pending)
        m.d.comb += pending_next.eq(pending + self.admit - popped)
        m.d.sync += [pending.eq(pending_next),
                     self.credit.eq(pending_next < self._depth),
                     self.credit_full.eq(pending_next == 0)]
        return m
