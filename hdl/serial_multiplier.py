"""Shift-and-add multiplier: one multiplier bit per cycle, stopping at its highest set bit.

The load unit's instruction checks and the IM2COL set-up multiply instruction fields once per
instruction; a combinational product of 16- or 32-bit fields is far too deep for one cycle.
This takes ``1 + bit_length(b)`` cycles, and each cycle is one adder. ``start`` and the
operands are registered first, so the enables of the working registers (about a hundred
flip-flops) come from flip-flops, not from the caller's logic behind ``start``.
:func:`staged_greater` is the matching helper for wide comparisons of such results.

Tested by ``tests/test_serial_multiplier.py`` (Amaranth simulator, random operands).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SerialMultiplier", "staged_greater"]


class SerialMultiplier(wiring.Component):
    """``product = (a * b) mod 2**product_width``.

    Parameters
    ----------
    a_width, b_width, product_width : int
        Operand and product widths (unsigned; a negative ``a`` in two's complement gives the
        product modulo ``2**product_width`` when ``a_width >= product_width``).
    b_flag : bool
        If true, the caller supplies ``b != 0`` on ``b_nonzero`` (say from a flip-flop of
        its own) instead of the multiplier comparing ``b`` with zero.

    Ports
    -----
    start : In(1)
        Sample ``a`` and ``b`` and begin.
    a : In(a_width)
    b : In(b_width)
    b_nonzero : In(1)
        Only with ``b_flag``: ``b != 0``, with ``start``.
    busy : Out(1)
        Still working: high from the cycle after ``start`` until ``b`` has run out (an OR of
        two flip-flops).
    busy_next : Out(1)
        What ``busy`` will be in the next cycle (combinational), for callers that keep their
        own registered "all multipliers free" flag instead of ORing the ``busy`` outputs.
    product : Out(product_width)
        Valid while not ``busy`` after a run, until the cycle after the next ``start``.
    """

    def __init__(self, a_width, b_width, product_width, b_flag=False):
        for name, v in (("a_width", a_width), ("b_width", b_width),
                        ("product_width", product_width)):
            if not isinstance(v, int) or v < 1:
                raise TypeError(f"Multiplier {name} must be a positive integer, not {v!r}")
        if not isinstance(b_flag, bool):
            raise TypeError(f"Multiplier b_flag must be a bool, not {b_flag!r}")
        self._pw = product_width
        self._b_flag = b_flag
        ports = {"start": In(1), "a": In(a_width), "b": In(b_width),
                 "busy": Out(1), "busy_next": Out(1), "product": Out(product_width)}
        if b_flag:
            ports["b_nonzero"] = In(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        # start and the operands, registered every cycle (no enable).
        start_q = Signal()
        a_q = Signal.like(self.a)
        b_q = Signal.like(self.b)
        nz_q = Signal()
        m.d.sync += [start_q.eq(self.start), a_q.eq(self.a), b_q.eq(self.b),
                     nz_q.eq(self.b_nonzero if self._b_flag else self.b != 0)]
        mcand = Signal(self._pw)
        mplier = Signal(len(self.b))
        # running is mplier != 0, kept a step ahead as a flip-flop.
        running = Signal()
        running_next = Mux(start_q, nz_q, running & (mplier[1:] != 0))
        m.d.sync += running.eq(running_next)
        m.d.comb += [self.busy.eq(start_q | running),
                     self.busy_next.eq(self.start | running_next)]
        with m.If(start_q):
            m.d.sync += [mcand.eq(a_q), mplier.eq(b_q), self.product.eq(0)]
        with m.Elif(running):
            m.d.sync += [mcand.eq(mcand << 1), mplier.eq(mplier >> 1)]
            with m.If(mplier[0]):
                m.d.sync += self.product.eq(self.product + mcand)
        return m


def staged_greater(m, a, b, name):
    """``a > b`` (unsigned) from registered half-width comparisons.

    The halves are compared every cycle into flip-flops; the returned value, one LUT on those,
    holds the result for the ``a`` and ``b`` of the cycle before. Long carry chains of wide
    compares (addresses against MEM_LIMIT) so never share a cycle with other logic.
    """
    width = max(len(a), len(b))
    half = (width + 1) // 2
    ax, bx = Signal(width, name=f"{name}_a"), Signal(width, name=f"{name}_b")
    m.d.comb += [ax.eq(a), bx.eq(b)]
    gt_hi, eq_hi, gt_lo = (Signal(name=f"{name}_{s}") for s in ("gt_hi", "eq_hi", "gt_lo"))
    m.d.sync += [gt_hi.eq(ax[half:] > bx[half:]), eq_hi.eq(ax[half:] == bx[half:]),
                 gt_lo.eq(ax[:half] > bx[:half])]
    return gt_hi | (eq_hi & gt_lo)
