"""Per-channel int32 -> int8 requantization unit, bit-exact with TFLite.

Each of the ``lanes`` lanes holds one output channel's parameters and applies, in a 7-stage
pipeline (see ``docs/numerics.md``)::

    x  = wrap32(acc + bias)
    xs = wrap32(x << max(shift, 0))
    hm = SaturatingRoundingDoublingHighMul(xs, multiplier)   # = (xs * m + 2**30) >> 31
    r  = RoundingDivideByPOT(hm, max(-shift, 0))
    y  = clamp(wrap32(r + zero_point), relu ? max(zp, -128) : -128, 127)

The form ``(xs * m + 2**30) >> 31`` (floor) equals gemmlowp's nudge-and-truncate formulation
for every input; the golden model keeps the literal gemmlowp form, so the tests check the
equivalence rather than assume it.

Parameters arrive one channel per beat on ``p_stream`` (channel 0 first) and are written, a
cycle after they are taken, only while no data is in flight; data waits while a parameter load
is incomplete.

Tested by ``tests/test_requantizer.py`` (Amaranth simulator) and ``tests/test_requant_rtl.py``
(cocotb + Verilator against ``octet.sim.golden.requantize``).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from octet.numerics import (
    ACC_BITS,
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    OPERAND_BITS,
    REQUANT_STAGES,
)

from .layouts import accumulator_layout, int8_row_layout, requant_param_layout
from .result_queue import QUEUE_SLACK, ResultQueue

__all__ = ["Requantizer"]



class Requantizer(wiring.Component):
    """Requantization unit for one row of ``lanes`` int32 accumulators per cycle.

    Parameters
    ----------
    lanes : int
        Channels processed in parallel (the array's column count).

    Ports
    -----
    p_stream : In(stream.Signature(requant_param_layout()))
        ``lanes`` beats, channel 0 first. ``zero_point`` and ``relu`` of the last beat apply.
    i_stream : In(stream.Signature(accumulator_layout(lanes)))
        int32 rows; ``last`` is passed through.
    o_stream : Out(stream.Signature(int8_row_layout(lanes)))
        int8 rows, in order.
    busy : Out(1)
        Rows are in the pipeline or waiting in the output queue.
    """

    def __init__(self, lanes=8):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise TypeError(f"Requantizer lanes must be a positive integer, not {lanes!r}")
        self._lanes = lanes
        super().__init__({
            "p_stream": In(stream.Signature(requant_param_layout())),
            "i_stream": In(stream.Signature(accumulator_layout(lanes))),
            "o_stream": Out(stream.Signature(int8_row_layout(lanes))),
            "busy": Out(1),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def latency(self):
        return REQUANT_STAGES

    def elaborate(self, platform):
        m = Module()
        n = self._lanes
        m.submodules.queue = queue = ResultQueue(int8_row_layout(n),
                                                 depth=REQUANT_STAGES + QUEUE_SLACK)
        wiring.connect(m, wiring.flipped(self.o_stream), queue.o_stream)

        # Parameter registers.
        mult = [Signal(signed(32), name=f"mult{c}") for c in range(n)]
        bias = [Signal(signed(32), name=f"bias{c}") for c in range(n)]
        left = [Signal(range(32), name=f"left{c}") for c in range(n)]
        right = [Signal(range(32), name=f"right{c}") for c in range(n)]
        zero_point = Signal(signed(OPERAND_BITS))
        relu = Signal()
        index = Signal(range(n))

        valid_pipe = Signal(REQUANT_STAGES)
        last_pipe = Signal(REQUANT_STAGES)
        m.d.comb += self.p_stream.ready.eq(valid_pipe == 0)
        # A parameter beat is registered as it is taken and decoded into its channel's
        # registers a cycle later, so the producer's payload logic (a block RAM read in the
        # store unit) ends here. The channel index still advances when the beat is taken, so
        # rows may follow the last beat as before: a row taken while the last channel's beat
        # is being written gets that channel's new bias forwarded into stage 1 (the other
        # parameters are used from stage 2 on, after the write).
        p_taken = self.p_stream.valid & self.p_stream.ready
        p_accept = Signal()
        p = Signal.like(self.p_stream.payload)
        p_chan = Signal(range(n))
        m.d.sync += p_accept.eq(p_taken)
        with m.If(p_taken):
            m.d.sync += [p.eq(self.p_stream.payload), p_chan.eq(index),
                         index.eq(Mux(index == n - 1, 0, index + 1))]
        with m.If(p_accept):
            m.d.sync += [zero_point.eq(p.zero_point), relu.eq(p.relu)]
            for c in range(n):
                with m.If(p_chan == c):
                    m.d.sync += [
                        mult[c].eq(p.multiplier),
                        bias[c].eq(p.bias),
                        left[c].eq(Mux(p.shift > 0, p.shift, 0)),
                        right[c].eq(Mux(p.shift < 0, -p.shift, 0)),
                    ]

        m.d.comb += self.i_stream.ready.eq(queue.credit & (index == 0) & ~self.p_stream.valid)
        accept = self.i_stream.valid & self.i_stream.ready
        m.d.comb += queue.admit.eq(accept)
        m.d.sync += [valid_pipe.eq(Cat(accept, valid_pipe[:-1])),
                     last_pipe.eq(Cat(self.i_stream.payload.last & accept, last_pipe[:-1]))]
        m.d.comb += [queue.result_valid.eq(valid_pipe[-1]), queue.result.last.eq(last_pipe[-1])]
        m.d.comb += self.busy.eq((valid_pipe != 0) | ~queue.credit_full)

        low = Signal(signed(ACC_BITS))
        m.d.comb += low.eq(Mux(relu & (zero_point > INT8_MIN), zero_point, INT8_MIN))

        for c in range(n):
            x = Signal(signed(32), name=f"x_{c}")
            xs = Signal(signed(32), name=f"xs_{c}")
            prod = Signal(signed(64), name=f"prod_{c}")
            ovf = Signal(name=f"ovf_{c}")
            hm = Signal(signed(32), name=f"hm_{c}")
            shifted = Signal(signed(32), name=f"shifted_{c}")
            round_up = Signal(name=f"round_up_{c}")
            r = Signal(signed(33), name=f"r_{c}")
            y = Signal(signed(OPERAND_BITS), name=f"y_{c}")
            acc = self.i_stream.payload.data[c]
            m.d.sync += [
                # 1: bias, wrapping like int32 C++ arithmetic.
                x.eq((acc + Mux(p_accept & (p_chan == c), p.bias, bias[c]))[:32]),
                # 2: left shift, wrapping.
                xs.eq((x << left[c])[:32]),
                # 3: the 32 x 32 product (a DSP cascade on FPGAs).
                prod.eq(xs * mult[c]),
                ovf.eq((xs == INT32_MIN) & (mult[c] == INT32_MIN)),
                # 4: doubling high multiply with gemmlowp's rounding.
                hm.eq(Mux(ovf, INT32_MAX, ((prod + (1 << 30)) >> 31)[:32])),
            ]
            # 5: rounding divide by a power of two: remainder against half, ties away from 0
            # (rounds up when the remainder exceeds half + 1 for negative hm). The mask and
            # both thresholds follow the shift a cycle later, long before data reaches stage 5
            # (data only enters once every parameter is in).
            mask = Signal(unsigned(32), name=f"mask_{c}")
            half = Signal(unsigned(32), name=f"half_{c}")
            half_neg = Signal(unsigned(33), name=f"half_neg_{c}")
            m.d.sync += [mask.eq((Const(1, 33) << right[c]) - 1),
                         half.eq(((Const(1, 33) << right[c]) - 1) >> 1),
                         half_neg.eq((((Const(1, 33) << right[c]) - 1) >> 1) + 1)]
            remainder = hm.as_unsigned() & mask
            m.d.sync += [shifted.eq(hm >> right[c]),
                         round_up.eq(Mux(hm[31], remainder > half_neg, remainder > half))]
            # 6: round, add the zero point (int32 wrap).
            m.d.sync += r.eq((shifted + round_up + zero_point)[:32].as_signed())
            # 7: saturate.
            with m.If(r > INT8_MAX):
                m.d.sync += y.eq(INT8_MAX)
            with m.Elif(r < low):
                m.d.sync += y.eq(low)
            with m.Else():
                m.d.sync += y.eq(r)
            m.d.comb += queue.result.data[c].eq(y)
        return m
