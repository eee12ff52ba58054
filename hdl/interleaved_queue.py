"""Credit-managed result queue whose read side is driven by flip-flops only.

Stalling a whole systolic array on output backpressure would fan one enable out to every
register of every PE, which costs timing on an FPGA. Instead the pipeline never stops: this
queue sits behind a free-running, fixed-latency pipeline (the systolic array, the requantizer),
an input is admitted only while the queue holds a credit for its result, and the queue is deep
enough for everything in flight (``depth >= latency + QUEUE_SLACK``). Results are read without a
FIFO's usual enable logic. A FIFO's read port normally loads its wide output register when "not
empty and (output empty or consumer ready)", a few gates after the consumer's handshake, and
that enable fans out to every payload bit. Here the results alternate between two LUT-RAM halves
(even results in half 0, odd ones in half 1), and each half feeds its own output slot register.
A slot is refilled only after it was emptied, so the decision to load it next cycle is known a
cycle ahead and held in a flip-flop (``load0`` / ``load1``): every wide enable, read address and
the output's valid flag comes straight from a register. The stream's payload is the head slot,
chosen by a registered parity bit. An emptied slot is refilled in the next cycle while the other
slot is read, so an always-ready consumer still takes one result per cycle with
:data:`QUEUE_SLACK` credits beyond the pipeline's latency. The write side needs no "not full"
check either: the credits guarantee room, so a half's write enable is the result's valid flag
and its parity.

Tested by ``tests/test_interleaved_queue.py`` (Amaranth simulator, random admission and
consumer stalls against a Python queue) and through the systolic array tests.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["InterleavedResultQueue", "QUEUE_SLACK"]

#: Credits beyond the pipeline latency needed for full throughput: one for the memory write,
#: one for the output slot's load, one for the cycle the consumer takes the beat.
QUEUE_SLACK = 3


class InterleavedResultQueue(wiring.Component):
    """Two LUT-RAM halves with one registered output slot each, plus a credit counter.

    Parameters
    ----------
    layout : Layout
        Payload layout of the results.
    depth : int
        Number of results that may be in flight or queued at once (at least 2).

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
        ``result`` is valid this cycle; it is written to the queue.
    o_stream : Out(stream.Signature(layout))
        Results in order, with backpressure. ``valid`` is a register; a result written in
        cycle t is offered from cycle t + 2 at the earliest.
    """

    def __init__(self, layout, depth):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
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

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        width = self._layout.size
        # Of `depth` consecutive results at most ceil(depth / 2) share a parity; one of them
        # may sit in the half's slot, the rest in its memory.
        half_depth = max(1, (self._depth + 1) // 2 - 1)

        head = Signal()                   # parity of the oldest result
        head_valid = self.o_stream.valid  # the head slot holds a result (a register)
        w_parity = Signal()               # parity of the next result written
        pop = head_valid & self.o_stream.ready
        slots = []
        for p in range(2):
            m.submodules[f"half{p}"] = mem = Memory(shape=width, depth=half_depth, init=[])
            w_port = mem.write_port()
            r_port = mem.read_port(domain="comb")
            w_addr = Signal(range(half_depth), name=f"w_addr{p}")
            r_addr = Signal(range(half_depth), name=f"r_addr{p}")
            level = Signal(range(half_depth + 1), name=f"level{p}")  # results in the memory
            slot = Signal(width, name=f"slot{p}")
            slot_valid = Signal(name=f"slot_valid{p}")
            load = Signal(name=f"load{p}")   # slot <= memory head at the end of this cycle
            write = self.result_valid & (w_parity == p)
            m.d.comb += [w_port.addr.eq(w_addr), w_port.data.eq(self.result.as_value()),
                         w_port.en.eq(write), r_port.addr.eq(r_addr)]
            with m.If(write):
                m.d.sync += w_addr.eq(Mux(w_addr == half_depth - 1, 0, w_addr + 1))
            with m.If(load):
                m.d.sync += [slot.eq(r_port.data),
                             r_addr.eq(Mux(r_addr == half_depth - 1, 0, r_addr + 1))]
            # Next-cycle state, so that `load` can be decided now and held in a register.
            level_next = Signal.like(level, name=f"level{p}_next")
            slot_valid_next = Signal(name=f"slot_valid{p}_next")
            m.d.comb += [
                level_next.eq(level + write - load),
                slot_valid_next.eq(slot_valid & ~(pop & (head == p)) | load),
            ]
            m.d.sync += [level.eq(level_next), slot_valid.eq(slot_valid_next),
                         load.eq((level_next != 0) & ~slot_valid_next)]
            slots.append((slot, slot_valid_next))

        head_next = head ^ pop
        m.d.sync += [head.eq(head_next),
                     head_valid.eq(Mux(head_next, slots[1][1], slots[0][1]))]
        with m.If(self.result_valid):
            m.d.sync += w_parity.eq(~w_parity)
        m.d.comb += self.o_stream.payload.eq(Mux(head, slots[1][0], slots[0][0]))

        # Credits: results admitted and not yet taken by the consumer.
        pending = Signal(range(self._depth + 1))
        pending_next = Signal.like(pending)
        m.d.comb += pending_next.eq(pending + self.admit - pop)
        m.d.sync += [pending.eq(pending_next),
                     self.credit.eq(pending_next < self._depth),
                     self.credit_full.eq(pending_next == 0)]
        return m
