"""The accelerator's performance counters: 64-bit event counts of one program run.

Counted while a program runs, cleared by its start: cycles, cycles the array computes,
cycles the bus is busy and stalled, bytes read and written, instructions dispatched. The
host reads each as two 32-bit registers (``octet.isa.Reg``), high, low, high to catch a carry.

Every event is registered before it reaches its 64-bit adder, so each count lands a cycle
after its event (two for the DMA and byte counts). Tested through the accelerator by
``tests/test_accelerator_rtl.py`` (exact counts against ``octet.sim.isa_sim``).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["COUNTERS", "PerfCounters"]

# The counters, named as their registers (``octet.isa.Reg``); ports are the lower-case names.
COUNTERS = ["CYCLES", "COMPUTE_CYCLES", "DMA_BUSY_CYCLES", "DMA_STALL_CYCLES", "BYTES_READ",
            "BYTES_WRITTEN", "INSTRUCTIONS"]


class PerfCounters(wiring.Component):
    """The seven counters.

    Parameters
    ----------
    bus_bytes : int
        Bytes per bus beat.

    Ports
    -----
    start : In(1)
        Program start: clears every count.
    running : In(1)
        A program runs (nothing is counted otherwise).
    computing : In(1)
        The compute unit's array computes this cycle.
    dispatched : In(1)
        The fetch unit dispatches an instruction this cycle.
    read_busy, write_busy : In(1)
        The bus reader / writer has a transfer in flight.
    read_beat, write_beat : In(1)
        A read / write data beat crosses the bus this cycle.
    write_accept : In(1)
        The writer takes a data beat from the store side this cycle.
    write_strb : In(bus_bytes)
        That beat's byte strobes (its set bits are the bytes written).
    cycles, compute_cycles, dma_busy_cycles, dma_stall_cycles, bytes_read, bytes_written,
    instructions : Out(64)
        The counts.
    """

    def __init__(self, bus_bytes):
        if not isinstance(bus_bytes, int) or isinstance(bus_bytes, bool) or bus_bytes <= 0:
            raise TypeError(f"Counter bus width must be a positive number of bytes, "
                            f"not {bus_bytes!r}")
        self._bus_bytes = bus_bytes
        super().__init__({
            "start": In(1), "running": In(1), "computing": In(1), "dispatched": In(1),
            "read_busy": In(1), "write_busy": In(1), "read_beat": In(1), "write_beat": In(1),
            "write_accept": In(1), "write_strb": In(bus_bytes),
            **{name.lower(): Out(64) for name in COUNTERS},
        })

    @property
    def bus_bytes(self):
        return self._bus_bytes

    def elaborate(self, platform):
        m = Module()
        B = self._bus_bytes
        start, running = self.start, self.running

        # The DMA flags come from the reader's and writer's handshake logic: registered once
        # (with running) before they are combined, so those counts land a cycle later still.
        dma_running, dma_busy, dma_beat = Signal(), Signal(), Signal()
        read_beat, write_accept, write_strb = Signal(), Signal(), Signal(B)
        m.d.sync += [dma_running.eq(running), dma_busy.eq(self.read_busy | self.write_busy),
                     dma_beat.eq(self.read_beat | self.write_beat),
                     read_beat.eq(self.read_beat), write_accept.eq(self.write_accept),
                     write_strb.eq(self.write_strb)]
        written = Signal(range(B + 1))
        m.d.comb += written.eq(sum(write_strb[i] for i in range(B)))
        increments = {
            "CYCLES": running,
            "COMPUTE_CYCLES": running & self.computing,
            "DMA_BUSY_CYCLES": dma_running & dma_busy,
            "DMA_STALL_CYCLES": dma_running & dma_busy & ~dma_beat,
            "BYTES_READ": Mux(dma_running & read_beat, B, 0),
            "BYTES_WRITTEN": Mux(dma_running & write_accept, written, 0),
            "INSTRUCTIONS": running & self.dispatched,
        }
        # Increments are registered first, so the events' logic (e.g. the fetch unit's decode)
        # does not run on into the 64-bit adders; each count lands one cycle later (the DMA
        # ones two), never across a start (no event happens while not running, and a start
        # follows the end of a run by more cycles: the host reads the status first).
        for name in COUNTERS:
            count = getattr(self, name.lower())
            step = Signal(range(B + 1), name=f"step_{name.lower()}")
            m.d.sync += step.eq(increments[name])
            with m.If(start):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + step)
        return m
