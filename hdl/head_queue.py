"""A small first-in first-out queue whose head register is enabled from flip-flops.

Entries wait in a LUT-RAM buffer (read asynchronously at a registered read pointer) and the
oldest one sits in a head register (``r_data``). The head register loads whenever it is empty
or being taken (``~r_rdy | r_en``), from the buffer's entry at the read pointer; whether that
entry exists is a flip-flop ("the buffer is not empty", bit 0 of a thermometer count). So
with a registered ``r_en`` the head register's wide enable is one LUT after flip-flops, and its
data comes straight from the RAM. ``r_rdy`` and ``level`` (entries held, head included) are
flip-flops too. The queue has no ``w_rdy``: the writer keeps ``level`` below ``depth`` itself.

Latency: an entry written into an empty queue is at the head two cycles later, and one entry
can be written and one taken in every cycle (as with ``amaranth.lib.fifo.SyncFIFOBuffered``).

Used by the fetch unit's queues, the scratchpad readers (``SpadReader``) and the block-RAM
memory's read queue, whose writers all count their own room.

Tested by ``tests/test_head_queue.py`` (random writes and reads against a Python model, cycle
by cycle) and by the accelerator tests through those users.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["HeadQueue"]


class HeadQueue(wiring.Component):
    """First-in first-out queue with a head register and flip-flop status outputs.

    Parameters
    ----------
    width : int
        Bits per entry.
    depth : int
        Entries held, head register included (at least 2).

    Ports
    -----
    w_en : In(1)
        Write ``w_data`` (only while ``level < depth``).
    w_data : In(width)
    r_en : In(1)
        Take the head (when ``r_rdy``); best driven by a flip-flop.
    r_data : Out(width)
        The head (a register).
    r_rdy : Out(1)
        The head holds an entry.
    level : Out(range(depth + 1))
        Entries held, the head included.
    """

    def __init__(self, width, depth):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer of at least 2, not {depth!r}")
        self._width = width
        self._depth = depth
        super().__init__({"w_en": In(1), "w_data": In(width), "r_en": In(1),
                          "r_data": Out(width), "r_rdy": Out(1),
                          "level": Out(range(depth + 1))})

    def elaborate(self, platform):
        m = Module()
        n = self._depth - 1                   # entries in the buffer behind the head
        m.submodules.storage = storage = Memory(shape=self._width, depth=n, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(n), name="produce")
        consume = Signal(range(n), name="consume")
        # The buffer's entries as a thermometer code (bit k: more than k entries), so that
        # "the buffer is not empty" (bit 0) is a flip-flop whose next value is a LUT or two
        # of the handshake, with no counter's carry chain in front of it.
        buffered = Signal(n, name="buffered")
        buffered_any = buffered[0]

        head_load = ~self.r_rdy | self.r_en
        buffer_read = head_load & buffered_any
        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(self.w_data),
                     w_port.en.eq(self.w_en), r_port.addr.eq(consume)]
        with m.If(self.w_en & ~buffer_read):
            m.d.sync += buffered.eq(Cat(Const(1, 1), buffered[:-1]))
        with m.Elif(buffer_read & ~self.w_en):
            m.d.sync += buffered.eq(buffered[1:])
        m.d.sync += self.level.eq(self.level + self.w_en - (self.r_rdy & self.r_en))
        with m.If(self.w_en):
            m.d.sync += produce.eq(Mux(produce == n - 1, 0, produce + 1))
        with m.If(buffer_read):
            m.d.sync += consume.eq(Mux(consume == n - 1, 0, consume + 1))
        with m.If(head_load):
            m.d.sync += [self.r_data.eq(r_port.data), self.r_rdy.eq(buffered_any)]
        return m
