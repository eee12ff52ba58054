"""A signed multiplier with registered operands and a registered product (latency 2).

On a Lattice ECP5 platform it is one ``MULT18X18D`` DSP block with its own input registers
(A, B) and output register enabled, all clocked by the ``sync`` domain (a ``DomainRenamer``
around the design renames the clock of the instance too). The paths then end and start at
flip-flops inside the DSP: the fabric only has to route operands to the block and the product
away from it, and the multiplier array's own delay sits between two DSP registers. Used
combinationally (as Yosys maps a ``*`` between fabric flip-flops) a DSP in a distant row put
two long routes and the array on one path.

Everywhere else (``platform=None`` in simulation, Verilator) the same two register stages are
written in plain Amaranth, so every test sees the DSP's timing. The registers have no reset
and no enable, like the DSP's (``CE0=1``, ``RST0=0``): the block suits a free-running pipeline
whose valid bits travel separately.

Tested by ``tests/test_pipelined_multiplier.py``: random and extreme operands in the Amaranth
simulator, the ECP5 netlist's instance and parameters, and a Yosys proof that the ECP5
netlist, with a behavioural model of the DSP, equals the generic one.
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DSP_OPERAND_BITS", "MULT18X18D_PARAMETERS", "PipelinedMultiplier"]

DSP_OPERAND_BITS = 18

# Input registers A and B and the output register on CLK0; no pipeline (multiplier-internal)
# register, no C input, no cascade; GSR off so the global reset does not touch the block.
MULT18X18D_PARAMETERS = {
    "REG_INPUTA_CLK": "CLK0", "REG_INPUTB_CLK": "CLK0", "REG_OUTPUT_CLK": "CLK0",
    "REG_PIPELINE_CLK": "NONE", "REG_INPUTC_CLK": "NONE",
    "CLK0_DIV": "ENABLED", "GSR": "DISABLED", "RESETMODE": "SYNC", "MULT_BYPASS": "DISABLED",
    "SOURCEB_MODE": "B_SHIFT", "CAS_MATCH_REG": "FALSE", "HIGHSPEED_CLK": "NONE",
}


def _is_ecp5(platform):
    return platform is not None and getattr(platform, "family", None) == "ecp5"


class PipelinedMultiplier(wiring.Component):
    """``p = a * b`` (signed), two clock edges after ``a`` and ``b`` are presented.

    Parameters
    ----------
    a_width, b_width : int
        Signed operand widths, 2 to 18 (one ECP5 DSP). Unsigned ``n``-bit values fit a signed
        ``n + 1``-bit port; ``eq`` extends them with zeros.

    Ports
    -----
    a : In(signed(a_width))
    b : In(signed(b_width))
        Operands, sampled at every clock edge.
    p : Out(signed(a_width + b_width))
        The product of the operands sampled two edges before (initially 0).
    """

    def __init__(self, a_width=DSP_OPERAND_BITS, b_width=DSP_OPERAND_BITS):
        for what, width in (("a_width", a_width), ("b_width", b_width)):
            if (not isinstance(width, int) or isinstance(width, bool)
                    or not 2 <= width <= DSP_OPERAND_BITS):
                raise ValueError(f"PipelinedMultiplier {what} must be an integer from 2 to "
                                 f"{DSP_OPERAND_BITS}, not {width!r}")
        self._a_width = a_width
        self._b_width = b_width
        super().__init__({
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "p": Out(signed(a_width + b_width)),
        })

    @property
    def latency(self):
        return 2

    def elaborate(self, platform):
        m = Module()
        if _is_ecp5(platform):
            # Operands sign-extended to the DSP's 18 bits; the 36-bit product's low bits.
            a = Signal(signed(DSP_OPERAND_BITS), name="dsp_a")
            b = Signal(signed(DSP_OPERAND_BITS), name="dsp_b")
            product = Signal(signed(2 * DSP_OPERAND_BITS), name="dsp_p")
            m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(product)]
            zero = Const(0, 1)
            ports = {f"i_A{k}": a[k] for k in range(DSP_OPERAND_BITS)}
            ports |= {f"i_B{k}": b[k] for k in range(DSP_OPERAND_BITS)}
            ports |= {f"i_C{k}": zero for k in range(DSP_OPERAND_BITS)}
            ports |= {f"o_P{k}": product[k] for k in range(2 * DSP_OPERAND_BITS)}
            ports |= {f"i_{name}{k}": zero for name in ("CLK", "CE", "RST") for k in (1, 2, 3)}
            m.submodules.dsp = Instance(
                "MULT18X18D",
                **{f"p_{key}": value for key, value in MULT18X18D_PARAMETERS.items()},
                i_CLK0=ClockSignal("sync"), i_CE0=Const(1, 1), i_RST0=zero,
                i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=zero, i_SOURCEB=zero,
                **ports,
            )
        else:
            a = Signal.like(self.a, name="a_reg", reset_less=True)
            b = Signal.like(self.b, name="b_reg", reset_less=True)
            product = Signal.like(self.p, name="p_reg", reset_less=True)
            m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b)]
            m.d.comb += self.p.eq(product)
        return m
