"""Scratchpad-row reader: turns addresses into a backpressured stream of rows.

A synchronous memory read port delivers data one cycle after the address. This block issues
a read only when its output FIFO has room for every read still in flight, so it never drops a
row and never stalls the memory. The read port is always enabled: a row is only taken in the
cycle after it was addressed, so reads of other cycles are simply not used, and no stall or
error signal fans out to the capture flip-flops of a wide memory (on the FPGA, a whole row of
block RAM outputs). Used by the compute unit's weight and activation feeders.

Tested by ``tests/test_spad_reader.py`` and the accelerator tests (``octet.sim.isa_sim``).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .head_queue import HeadQueue
from .unit_ports import MemRead

__all__ = ["SpadReader"]


class SpadReader(wiring.Component):
    """Read rows at requested addresses, in order, with an extra tag bit passed along.

    Parameters
    ----------
    width, depth : int
        Row width in bits and rows of the memory.

    Ports
    -----
    i_addr : In(stream.Signature({"addr": range(depth), "last": 1}))
    mem : Out(MemRead(width, depth))
    o_row : Out(stream.Signature({"data": width, "last": 1}))
    busy : Out(1)
    """

    _DEPTH = 6

    def __init__(self, width, depth):
        self._width = width
        self._depth = depth
        super().__init__({
            "i_addr": In(stream.Signature(data.StructLayout({"addr": range(depth),
                                                             "last": 1}))),
            "mem": Out(MemRead(width, depth)),
            "o_row": Out(stream.Signature(data.StructLayout({"data": width, "last": 1}))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # A HeadQueue, not a SyncFIFOBuffered: the reader never issues without room (see
        # ``outstanding``), so the queue's write needs no "not full" gate, and the row memory's
        # write enable (a whole row of LUT RAM) is the ``in_flight`` flip-flop itself.
        m.submodules.queue = queue = HeadQueue(self._width + 1, self._DEPTH)
        in_flight = Signal()
        in_flight_last = Signal()
        # Rows queued plus the one in flight from the memory, kept as a register (rather than
        # the FIFO's level plus in_flight) so that ``ready`` is one comparison deep.
        outstanding = Signal(range(self._DEPTH + 1))
        room = outstanding < self._DEPTH - 1
        issue = self.i_addr.valid & room
        popped = self.o_row.valid & self.o_row.ready
        m.d.sync += outstanding.eq(outstanding + issue - popped)
        m.d.comb += [self.i_addr.ready.eq(room), self.mem.addr.eq(self.i_addr.payload.addr),
                     self.mem.en.eq(1)]
        m.d.sync += [in_flight.eq(issue), in_flight_last.eq(self.i_addr.payload.last)]
        m.d.comb += [queue.w_en.eq(in_flight),
                     queue.w_data.eq(self.mem.data | (in_flight_last << self._width)),
                     self.o_row.valid.eq(queue.r_rdy),
                     self.o_row.payload.data.eq(queue.r_data[:self._width]),
                     self.o_row.payload.last.eq(queue.r_data[self._width]),
                     queue.r_en.eq(self.o_row.ready),
                     self.busy.eq(in_flight | (queue.level != 0))]
        return m
