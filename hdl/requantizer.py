"""Per-channel int32 -> int8 requantization unit, bit-exact with TFLite.

Each of the ``lanes`` lanes holds one output channel's parameters and applies, in a 9-stage
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

from .interleaved_queue import QUEUE_SLACK, InterleavedResultQueue
from .layouts import accumulator_layout, int8_row_layout, requant_param_layout
from .pipelined_multiplier import PipelinedMultiplier

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
        m.submodules.queue = queue = InterleavedResultQueue(
            int8_row_layout(n), depth=REQUANT_STAGES + QUEUE_SLACK)
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
        # p_stream.ready is "no row in the pipeline" (valid_pipe == 0), kept as a register
        # so that the store unit's parameter handshake does not start with an 8-input NOR.
        p_ready = Signal(init=1)
        m.d.comb += self.p_stream.ready.eq(p_ready)
        # A parameter beat is registered as it is taken and decoded into its channel's
        # registers a cycle later, so the producer's payload logic (a block RAM read in the
        # store unit) ends here. The channel index advances when the beat is taken; rows
        # wait until the last beat is written (``p_accept``), so stage 1 reads every
        # parameter from its register, with no forwarding multiplexer in front of the bias
        # adders.
        # Each channel's write strobe is a flip-flop of its own (one-hot), so the decode of the
        # channel index does not sit in front of the registers of every lane, which are spread
        # along the DSP rows.
        p_taken = self.p_stream.valid & self.p_stream.ready
        p_accept = Signal()
        p = Signal.like(self.p_stream.payload)
        p_write = Signal(n)
        m.d.sync += [p_accept.eq(p_taken),
                     p_write.eq(Mux(p_taken, 1 << index, 0))]
        with m.If(p_taken):
            m.d.sync += [p.eq(self.p_stream.payload),
                         index.eq(Mux(index == n - 1, 0, index + 1))]
        with m.If(p_accept):
            m.d.sync += [zero_point.eq(p.zero_point), relu.eq(p.relu)]
        for c in range(n):
            with m.If(p_write[c]):
                m.d.sync += [
                    mult[c].eq(p.multiplier),
                    bias[c].eq(p.bias),
                    left[c].eq(Mux(p.shift > 0, p.shift, 0)),
                    right[c].eq(Mux(p.shift < 0, -p.shift, 0)),
                ]

        # No parameter beat is being decoded and the channel index is back at 0, as a
        # register (p_accept follows p_taken, and the index moves only on p_taken), so rows'
        # ``ready``, which enables the row stage in front (a whole accumulator row), is one
        # LUT of flip-flops.
        p_idle = Signal(init=1)
        m.d.sync += p_idle.eq(~p_taken & (index == 0))
        m.d.comb += self.i_stream.ready.eq(queue.credit & p_idle & ~self.p_stream.valid)
        accept = self.i_stream.valid & self.i_stream.ready
        m.d.comb += queue.admit.eq(accept)
        m.d.sync += p_ready.eq(~accept & (valid_pipe[:-1] == 0))
        m.d.sync += [valid_pipe.eq(Cat(accept, valid_pipe[:-1])),
                     last_pipe.eq(Cat(self.i_stream.payload.last & accept, last_pipe[:-1]))]
        m.d.comb += [queue.result_valid.eq(valid_pipe[-1]), queue.result.last.eq(last_pipe[-1])]
        m.d.comb += self.busy.eq((valid_pipe != 0) | ~queue.credit_full)

        # The saturation floor, registered: it follows zero_point and relu a cycle later,
        # long before a row that uses them reaches stage 9.
        low = Signal(signed(ACC_BITS))
        m.d.sync += low.eq(Mux(relu & (zero_point > INT8_MIN), zero_point, INT8_MIN))

        for c in range(n):
            x = Signal(signed(32), name=f"x_{c}")
            xs = Signal(signed(32), name=f"xs_{c}")
            ovf = [Signal(name=f"ovf{k}_{c}") for k in range(3)]
            hm = Signal(signed(32), name=f"hm_{c}")
            shifted = Signal(signed(32), name=f"shifted_{c}")
            round_up = Signal(name=f"round_up_{c}")
            r = Signal(signed(33), name=f"r_{c}")
            y = Signal(signed(OPERAND_BITS), name=f"y_{c}")
            acc = self.i_stream.payload.data[c]
            # 1: bias, wrapping like int32 C++ arithmetic, then the left shift's whole bytes
            # (left[c] // 8).
            biased = Signal(signed(32), name=f"biased_{c}")
            m.d.comb += biased.eq((acc + bias[c])[:32])
            coarse = Signal(2, name=f"left_bytes_{c}")
            m.d.comb += coarse.eq(left[c][3:5])
            m.d.sync += x.eq((biased << (coarse * 8))[:32])
            # 2: the rest of the left shift (left[c] % 8), wrapping: (v << 8a << b) mod 2**32
            # is (v << (8a + b)) mod 2**32, into a fabric register; from there it goes
            # straight into the multipliers' operand registers (inside the DSP blocks on
            # ECP5), so nothing but a route sits in front of them.
            m.d.sync += xs.eq((x << left[c][:3])[:32])
            # 3-4: the 32 x 32 product from four 16 x 16 halves, one pipelined DSP multiplier
            # each (operands registered at 3, products at 4); summed over stages 5-6:
            # (prod + 2**30) >> 31 = (outer + (middle << 16)) >> 31. The low halves are
            # unsigned (zero-extended into the signed operand ports), the high halves signed.
            # mult[c] is written only while no row is in flight.
            xh, xl = xs[16:].as_signed(), xs[:16]
            mh, ml = mult[c][16:].as_signed(), mult[c][:16]
            pp_hh = Signal(signed(32), name=f"pp_hh_{c}")
            pp_hl = Signal(signed(33), name=f"pp_hl_{c}")
            pp_lh = Signal(signed(33), name=f"pp_lh_{c}")
            pp_ll = Signal(unsigned(32), name=f"pp_ll_{c}")
            for half, pp, a, b in (("hh", pp_hh, xh, mh), ("hl", pp_hl, xh, ml),
                                   ("lh", pp_lh, xl, mh), ("ll", pp_ll, xl, ml)):
                mul = PipelinedMultiplier(17, 17)
                m.submodules[f"mul_{half}_{c}"] = mul
                m.d.comb += [mul.a.eq(a), mul.b.eq(b), pp.eq(mul.p)]
            outer = Signal(signed(64), name=f"outer_{c}")
            middle = Signal(signed(34), name=f"middle_{c}")
            m.d.sync += [
                # 3: the overflow case of the doubling high multiply, carried along.
                ovf[0].eq((xs == INT32_MIN) & (mult[c] == INT32_MIN)),
                ovf[1].eq(ovf[0]),
                # 5: the outer products (side by side) with the rounding constant; the middle.
                outer.eq(Cat(pp_ll, pp_hh).as_signed() + (1 << 30)),
                middle.eq(pp_hl + pp_lh),
                ovf[2].eq(ovf[1]),
                # 6: doubling high multiply with gemmlowp's rounding.
                hm.eq(Mux(ovf[2], INT32_MAX, ((outer + (middle << 16)) >> 31)[:32])),
            ]
            # 7: rounding divide by a power of two: ties away from zero, so the remainder
            # (the low `right` bits) rounds up when it is at least half (bit right - 1 set)
            # and, for a negative hm, more than half (a lower bit set too). The bit and
            # the bits below it follow the shift a cycle later, long before data reaches this
            # stage (data only enters once every parameter is in).
            half_bit = Signal(unsigned(32), name=f"half_bit_{c}")
            below = Signal(unsigned(32), name=f"below_{c}")
            m.d.sync += [half_bit.eq((Const(1, 33) << right[c]) >> 1),
                         below.eq(((Const(1, 33) << right[c]) >> 1) - 1)]
            m.d.sync += [shifted.eq(hm >> right[c]),
                         round_up.eq((hm & half_bit).any() &
                                     (~hm[31] | (hm & below[:31]).any()))]
            # 8: round, add the zero point (int32 wrap).
            m.d.sync += r.eq((shifted + round_up + zero_point)[:32].as_signed())
            # 9: saturate.
            with m.If(r > INT8_MAX):
                m.d.sync += y.eq(INT8_MAX)
            with m.Elif(r < low):
                m.d.sync += y.eq(low)
            with m.Else():
                m.d.sync += y.eq(r)
            m.d.comb += queue.result.data[c].eq(y)
        return m
