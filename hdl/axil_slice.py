"""An AXI4-Lite register slice that cuts every combinational path from its slave port.

Each of the five channels goes through one register stage that takes a transfer only while
empty (half throughput: a register access is a handful of cycles either way). Nothing behind
the slice depends combinationally on the signals of its slave port, and every ready or valid
it drives is a register. :class:`~octet.hdl.accelerator_sim.AcceleratorWithMemory` puts it
between its top-level ports and the accelerator so that Verilator does not re-evaluate the
design at every input change (see that module).

Tested through ``tests/test_accelerator_rtl.py`` (the fast configuration's register accesses).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AxiLiteSignature

__all__ = ["AxiLiteSlice"]

# (valid, ready, payload members) of each channel; True if it flows master -> slave.
_CHANNELS = (
    ("awvalid", "awready", ("awaddr",), True),
    ("wvalid", "wready", ("wdata", "wstrb"), True),
    ("arvalid", "arready", ("araddr",), True),
    ("bvalid", "bready", ("bresp",), False),
    ("rvalid", "rready", ("rdata", "rresp"), False),
)


class AxiLiteSlice(wiring.Component):
    """One register stage on each AXI4-Lite channel.

    Parameters
    ----------
    addr_width, data_width : int
        As :class:`~octet.hdl.axi.AxiLiteSignature`.

    Ports
    -----
    s : In(AxiLiteSignature(addr_width, data_width))
        Towards the master (the top-level ports).
    m : Out(AxiLiteSignature(addr_width, data_width))
        Towards the slave (the register bank).
    """

    def __init__(self, addr_width=8, data_width=32):
        signature = AxiLiteSignature(addr_width, data_width)
        super().__init__({"s": In(signature), "m": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        for valid, ready, payload, forward in _CHANNELS:
            src, dst = (self.s, self.m) if forward else (self.m, self.s)
            full = Signal(name=f"{valid}_full")
            m.d.comb += [getattr(src, ready).eq(~full), getattr(dst, valid).eq(full)]
            for name in payload:
                held = Signal.like(getattr(src, name), name=f"{name}_q")
                m.d.comb += getattr(dst, name).eq(held)
                with m.If(getattr(src, valid) & ~full):
                    m.d.sync += held.eq(getattr(src, name))
            with m.If(getattr(src, valid) & ~full):
                m.d.sync += full.eq(1)
            with m.Elif(getattr(dst, ready)):
                m.d.sync += full.eq(0)
        return m
