"""A high-fan-out control signal on the FPGA's global network.

The accelerator's per-program reset (``start``) reaches every flip-flop of its units, about
12,000 of them at 8x8. Routed through the general fabric that one net took 15 ns on an ECP5
(the whole critical path at 61 MHz). On a Lattice ECP5 platform this component is a ``DCCA``
clock buffer: nextpnr routes a DCCA's output over a primary global, which reaches the LSR
(set/reset) pin of every slice with a fixed, short delay. On any other platform, and in
simulation (``platform=None``), it is a wire.

For the buffer to feed the flip-flops' LSR pins directly, its output must be their only reset:
a second reset (a domain's) would be ORed with it in a LUT, and that LUT's output would again
be a fabric net. See ``Accelerator(unit_domain=...)`` and ``BoardTop`` for how the board system
keeps the two apart.
"""

from amaranth.hdl import Const, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["GlobalBuffer"]


def _is_ecp5(platform):
    return platform is not None and getattr(platform, "family", None) == "ecp5"


class GlobalBuffer(wiring.Component):
    """Buffer ``i`` onto a global network (ECP5 ``DCCA``), or pass it through.

    Ports
    -----
    i : In(1)
        The signal, from a flip-flop (the buffer adds no register).
    o : Out(1)
        The same signal; on ECP5 it leaves through the global network.
    """

    i: In(1)
    o: Out(1)

    def elaborate(self, platform):
        m = Module()
        if _is_ecp5(platform):
            m.submodules.dcca = Instance("DCCA", i_CLKI=self.i, i_CE=Const(1), o_CLKO=self.o)
        else:
            m.d.comb += self.o.eq(self.i)
        return m
