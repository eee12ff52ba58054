"""Weight-stationary processing element with a double-buffered weight.

The PE holds two weights (banks 0 and 1). Activations travel left to right, each with the bank
bit that says which weight tile they belong to, so a new tile can be loaded into one bank while
activations still use the other. Partial sums travel top to bottom. The product is registered
before the add so that synthesis can put the multiplier in a DSP block with its output register.

Tested by ``tests/test_pe.py`` (Amaranth simulator, against Python integer arithmetic).
"""

from amaranth.hdl import Module, Mux, Signal, signed
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
    bank_in : In(1)
        Weight bank the activation uses, travelling with it.
    a_out, bank_out : Out
        ``a_in`` and ``bank_in`` registered, to the right neighbour.
    psum_in : In(signed(psum_bits))
        Partial sum from the PE above (zero at the top row).
    psum_out : Out(signed(psum_bits))
        ``psum_in + a * w[bank]``, where the product was registered one cycle earlier: the
        result for an activation presented at cycle t appears at cycle t + 2.
    w_data : In(signed(8))
        Weight to write.
    w_we : In(1)
        Write ``w_data`` into bank ``w_bank`` at the next clock edge.
    w_bank : In(1)
        Bank written by ``w_we``.
    """

    def __init__(self, psum_bits):
        if not isinstance(psum_bits, int) or psum_bits < 2 * OPERAND_BITS:
            raise TypeError(f"PE partial sum width must be an integer >= {2 * OPERAND_BITS}, "
                            f"not {psum_bits!r}")
        self._psum_bits = psum_bits
        super().__init__({
            "a_in": In(signed(OPERAND_BITS)),
            "bank_in": In(1),
            "a_out": Out(signed(OPERAND_BITS)),
            "bank_out": Out(1),
            "psum_in": In(signed(psum_bits)),
            "psum_out": Out(signed(psum_bits)),
            "w_data": In(signed(OPERAND_BITS)),
            "w_we": In(1),
            "w_bank": In(1),
        })

    @property
    def psum_bits(self):
        return self._psum_bits

    def elaborate(self, platform):
        m = Module()
        weights = [Signal(signed(OPERAND_BITS), name=f"w{b}") for b in range(2)]
        product = Signal(signed(2 * OPERAND_BITS))

        with m.If(self.w_we):
            with m.If(self.w_bank):
                m.d.sync += weights[1].eq(self.w_data)
            with m.Else():
                m.d.sync += weights[0].eq(self.w_data)

        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.bank_out.eq(self.bank_in),
            product.eq(self.a_in * Mux(self.bank_in, weights[1], weights[0])),
            self.psum_out.eq(self.psum_in + product),
        ]
        return m
