"""The compute core: systolic array and requantizer side by side.

Until the full accelerator (with DMA, scratchpads and an instruction decoder) exists, this is
the unit the host drives directly: matrix tiles go to the array's streams, accumulated rows to
the requantizer's. Ports are the sub-blocks' streams under prefixed names.

Tested through ``tests/test_gemm_cli.py`` and ``tests/test_array_rtl.py`` (Verilator).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring

from .requantizer import Requantizer
from .systolic_array import SystolicArray

__all__ = ["ComputeCore"]


class ComputeCore(wiring.Component):
    """Systolic array plus requantizer.

    Parameters
    ----------
    rows, cols : int
        Array size; the requantizer has ``cols`` lanes.

    Ports
    -----
    w_stream, a_stream, o_stream : see :class:`SystolicArray`.
    p_stream, rq_i_stream, rq_o_stream : the requantizer's ``p_stream``, ``i_stream`` and
        ``o_stream`` (see :class:`Requantizer`).
    computing : Out(1)
        The array accepted an activation vector in the previous cycle.
    """

    def __init__(self, rows=8, cols=8):
        self._array = SystolicArray(rows, cols)
        self._requant = Requantizer(cols)
        array_sig = self._array.signature.members
        rq_sig = self._requant.signature.members
        super().__init__({
            "w_stream": array_sig["w_stream"],
            "a_stream": array_sig["a_stream"],
            "o_stream": array_sig["o_stream"],
            "computing": array_sig["computing"],
            "p_stream": rq_sig["p_stream"],
            "rq_i_stream": rq_sig["i_stream"],
            "rq_o_stream": rq_sig["o_stream"],
        })

    @property
    def rows(self):
        return self._array.rows

    @property
    def cols(self):
        return self._array.cols

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self._array
        m.submodules.requant = requant = self._requant
        for name in ("w_stream", "a_stream", "o_stream"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(array, name))
        m.d.comb += self.computing.eq(array.computing)
        wiring.connect(m, wiring.flipped(self.p_stream), requant.p_stream)
        wiring.connect(m, wiring.flipped(self.rq_i_stream), requant.i_stream)
        wiring.connect(m, wiring.flipped(self.rq_o_stream), requant.o_stream)
        return m
