"""Counting semaphores that order the load, compute and store units (VTA's dependency queues).

A token queue only counts: the producer ``push`` es when an instruction that promised a token
finishes, the consumer ``pop`` s before an instruction that needs one starts. Both may happen
in the same cycle. More than 255 outstanding tokens is a program error (``overflow``).

``available`` comes straight from a flip-flop (kept equal to "count != 0" by updating it with
the count), so the units that wait on it do not see the count's comparator first.

Tested by ``tests/test_accelerator_units.py`` (Amaranth simulator).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TokenQueue"]


class TokenQueue(wiring.Component):
    """One token counter.

    Ports
    -----
    push : In(1)
        Add a token this cycle.
    pop : In(1)
        Take a token this cycle (only while ``available``).
    available : Out(1)
        At least one token is queued.
    overflow : Out(1)
        Sticky: a push found 255 tokens queued.
    clear : In(1)
        Empty the queue and clear ``overflow`` (at program start).
    """

    push: In(1)
    pop: In(1)
    available: Out(1)
    overflow: Out(1)
    clear: In(1)

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        available = Signal()                 # count != 0, registered
        m.d.comb += self.available.eq(available)
        # Written flat, so that push and pop (late: they come from the units' state machines)
        # pass one LUT into each flip-flop: the count's +1/-1 and compares are ready early.
        took = self.pop & available
        inc = self.push & ~took
        dec = ~self.push & took
        full = count == 255
        with m.If((inc & ~full) | dec):
            m.d.sync += count.eq(Mux(self.push, count + 1, count - 1))
        with m.If(inc):
            m.d.sync += available.eq(1)
        with m.Elif(dec):
            m.d.sync += available.eq(count != 1)
        with m.If(inc & full):
            m.d.sync += self.overflow.eq(1)
        with m.If(self.clear):
            m.d.sync += [count.eq(0), available.eq(0), self.overflow.eq(0)]
        return m
