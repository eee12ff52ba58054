"""A first-in first-out queue read from LUT RAM, with a few bits of its head in flip-flops.

Entries wait in a LUT-RAM buffer read asynchronously at a registered read pointer, so the
head (``r_data``) costs no wide register and taking it only moves the pointer (as with
``amaranth.lib.fifo.SyncFIFO``). The lowest ``flag_bits`` bits of every entry are also kept in
flip-flops beside the RAM, and the head's (``r_flags``) are a register, loaded each cycle with
the flags of the entry that will be the head in the next cycle: the one after the head if it
is taken, else the head itself, or the entry being written when the queue is about to be
empty. So a decision that depends on the head's flags (which way the head goes) starts from
flip-flops, not from the RAM's read. ``r_rdy``, ``w_rdy`` and ``level`` are flip-flops too.

Latency: an entry written into an empty queue is at the head in the next cycle, and one
entry can be written and one taken in every cycle (as with ``SyncFIFO``).

Tested by ``tests/test_flagged_queue.py`` (random writes and reads against
``amaranth.lib.fifo.SyncFIFO`` in the same simulation, cycle by cycle) and by the accelerator
tests through the load unit.
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["FlaggedQueue"]


class FlaggedQueue(wiring.Component):
    """First-in first-out queue with the head's low bits and the status in flip-flops.

    Parameters
    ----------
    width : int
        Bits per entry.
    depth : int
        Entries held (a power of two, at least 2).
    flag_bits : int
        Low bits of each entry also offered as the registered ``r_flags`` (1 to ``width``).

    Ports
    -----
    w_en : In(1)
        Write ``w_data`` (ignored while not ``w_rdy``).
    w_data : In(width)
    w_rdy : Out(1)
        Room for an entry (a register).
    r_en : In(1)
        Take the head (ignored while not ``r_rdy``).
    r_data : Out(width)
        The head, read from the LUT RAM.
    r_flags : Out(flag_bits)
        ``r_data[:flag_bits]``, from a register.
    r_rdy : Out(1)
        The queue holds an entry (a register).
    level : Out(range(depth + 1))
        Entries held (a register).
    """

    def __init__(self, width, depth, flag_bits):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(depth, int) or depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two of at least 2, not {depth!r}")
        if not isinstance(flag_bits, int) or not 1 <= flag_bits <= width:
            raise ValueError(f"flag_bits must be an integer from 1 to width ({width}), "
                             f"not {flag_bits!r}")
        self._width = width
        self._depth = depth
        self._flags = flag_bits
        super().__init__({"w_en": In(1), "w_data": In(width), "w_rdy": Out(1, init=1),
                          "r_en": In(1), "r_data": Out(width), "r_flags": Out(flag_bits),
                          "r_rdy": Out(1), "level": Out(range(depth + 1))})

    def elaborate(self, platform):
        m = Module()
        n, fb = self._depth, self._flags
        m.submodules.storage = storage = Memory(shape=self._width, depth=n, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(n))
        consume = Signal(range(n))
        flags = Array(Signal(fb, name=f"flags{i}") for i in range(n))

        write = Signal()
        read = Signal()
        m.d.comb += [write.eq(self.w_en & self.w_rdy), read.eq(self.r_en & self.r_rdy),
                     w_port.addr.eq(produce), w_port.data.eq(self.w_data), w_port.en.eq(write),
                     r_port.addr.eq(consume), self.r_data.eq(r_port.data)]
        with m.If(write):
            m.d.sync += [produce.eq(produce + 1), flags[produce].eq(self.w_data[:fb])]
        with m.If(read):
            m.d.sync += consume.eq(consume + 1)

        level_next = Signal(range(n + 1))
        m.d.comb += level_next.eq(self.level + write - read)
        m.d.sync += [self.level.eq(level_next), self.r_rdy.eq(level_next != 0),
                     self.w_rdy.eq(level_next != n)]
        # The next head's flags: the written entry's if nothing else is left, else those
        # of the entry after the head (taken) or of the head (kept), from the flag registers.
        only_written = Signal()
        m.d.comb += only_written.eq(Mux(read, self.level == 1, ~self.r_rdy))
        after_head = flags[(consume + 1)[:len(consume)]]
        m.d.sync += self.r_flags.eq(Mux(only_written, self.w_data[:fb],
                                        Mux(read, after_head, flags[consume])))
        return m
