"""Weight-stationary processing element with a double-buffered weight.

The PE holds two weights (banks 0 and 1). Activations travel left to right, each with the bank
bit that says which weight tile they belong to, so a new tile can be loaded into one bank while
activations still use the other. Partial sums travel top to bottom.

The product is built in logic from radix-4 digits of the activation, each selecting a
multiple of the stationary weight (0, w, 2w, 3w; the top digit, signed: 0, w, -2w, -w). The
multiples 3w and -w arrive precomputed with the weight (the array computes them once per
column at its edge), so the PE only stores them, and an activation only drives multiplexers
and one short adder per half: the two halves of the product (digits 0-1
and 2-3) are registered, then added to the incoming partial sum in the next cycle. No DSP
block and no deep multiplier tree sit in the array's per-cycle path.

The weight bank is chosen by a register of the PE's own (``bank_sel``), loaded one cycle
before the activation arrives from the bank and activation the left neighbour sees then
(``bank_next``, ``a_next``); ``bank_next`` is passed on registered, so the bank bit travels
along the row one column ahead of its activation. All PEs on one anti-diagonal of the array
see the same bank bit, and synthesis merges identical registers, so a plain copy of it would
again be one flip-flop driving the weight multiplexers of up to R PEs across the array. The
select register therefore holds the bank and-ed with "the activation is non-zero" (a zero
activation's product is zero with either weight), which differs from PE to PE: each PE's
weight multiplexers hang off a local flip-flop.

Tested by ``tests/test_pe.py`` (Amaranth simulator, against Python integer arithmetic).
"""

from amaranth.hdl import C, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from octet.numerics import OPERAND_BITS

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """One multiply-accumulate cell of the systolic array.

    Parameters
    ----------
    psum_bits : int
        Width of the partial sum passed down the column (at least 16).

    Ports
    -----
    a_in : In(signed(8))
        Activation from the left neighbour (or the row's skew line).
    a_next : In(signed(8))
        The activation that arrives at ``a_in`` in the next cycle (the left neighbour's
        ``a_in``, or the skew line's previous stage).
    bank_next : In(1)
        Weight bank of ``a_next``, one cycle ahead of its activation.
    a_out : Out(signed(8))
        ``a_in`` registered, to the right neighbour's ``a_in``.
    bank_out : Out(1)
        ``bank_next`` registered, to the right neighbour's ``bank_next``.
    psum_in : In(signed(psum_bits))
        Partial sum from the PE above (zero at the top row).
    psum_out : Out(signed(psum_bits))
        ``psum_in + a * w[bank]``, where the product's two halves were registered one cycle
        earlier: the result for an activation presented at cycle t appears at cycle t + 2.
    w_data : In(signed(8))
        Weight w to write.
    w3_data : In(signed(10))
        3 w, written with ``w_data``.
    wneg_data : In(signed(9))
        -w, written with ``w_data``.
    we0, we1 : In(1)
        Write ``w_data``, ``w3_data`` and ``wneg_data`` into bank 0 (1) at the next clock
        edge. One enable per bank, so each is a plain clock enable of the bank's registers.
    """

    def __init__(self, psum_bits):
        if not isinstance(psum_bits, int) or psum_bits < 2 * OPERAND_BITS:
            raise TypeError(f"PE partial sum width must be an integer >= {2 * OPERAND_BITS}, "
                            f"not {psum_bits!r}")
        self._psum_bits = psum_bits
        super().__init__({
            "a_in": In(signed(OPERAND_BITS)),
            "a_next": In(signed(OPERAND_BITS)),
            "bank_next": In(1),
            "a_out": Out(signed(OPERAND_BITS)),
            "bank_out": Out(1),
            "psum_in": In(signed(psum_bits)),
            "psum_out": Out(signed(psum_bits)),
            "w_data": In(signed(OPERAND_BITS)),
            "w3_data": In(signed(OPERAND_BITS + 2)),
            "wneg_data": In(signed(OPERAND_BITS + 1)),
            "we0": In(1),
            "we1": In(1),
        })

    @property
    def psum_bits(self):
        return self._psum_bits

    def elaborate(self, platform):
        m = Module()
        bits = OPERAND_BITS
        # Per bank: w, 3w and -w (written together).
        banks = [{"w": Signal(signed(bits), name=f"w{b}"),
                  "w3": Signal(signed(bits + 2), name=f"w3_{b}"),
                  "neg": Signal(signed(bits + 1), name=f"wneg{b}")} for b in range(2)]
        for bank, we in zip(banks, (self.we0, self.we1), strict=True):
            with m.If(we):
                m.d.sync += [bank["w"].eq(self.w_data),
                             bank["w3"].eq(self.w3_data),
                             bank["neg"].eq(self.wneg_data)]
        # The bank of the activation now in `a_in`; 0 for a zero activation (see the module
        # docstring for why it is not a plain copy of the bank bit).
        bank_sel = Signal()
        m.d.sync += [bank_sel.eq(self.bank_next & (self.a_next != 0)),
                     self.bank_out.eq(self.bank_next)]
        w, w3, neg = (Mux(bank_sel, banks[1][k], banks[0][k]) for k in ("w", "w3", "neg"))

        def pick(digit, choices):
            return Mux(digit[1], Mux(digit[0], choices[3], choices[2]),
                       Mux(digit[0], choices[1], choices[0]))

        a = self.a_in
        zero = C(0, signed(bits + 2))
        # a = d0 + 4 d1 + 16 d2 + 64 d3, d0..d2 unsigned in 0..3, d3 = a[6] - 2 a[7].
        pps = [pick(a[2 * k:2 * k + 2], [zero, w, w << 1, w3]) for k in range(3)]
        pps.append(pick(a[6:8], [zero, w, neg << 1, neg]))
        low = Signal(signed(2 * bits - 4))    # (d0 + 4 d1) * w, within +-1920
        high = Signal(signed(2 * bits - 4))   # (d2 + 4 d3) * w, within +-1920
        m.d.sync += [
            self.a_out.eq(self.a_in),
            low.eq(pps[0] + (pps[1] << 2)),
            high.eq(pps[2] + (pps[3] << 2)),
            self.psum_out.eq(self.psum_in + low + (high << 4)),
        ]
        return m
