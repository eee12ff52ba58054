"""A registered stream stage at full throughput: a skid buffer.

Every output of the stage comes from a flip-flop: ``o_stream.valid`` and ``o_stream.payload``
from the output register and ``i_stream.ready`` from "the skid register is empty". So a long
combinational valid/ready/payload chain from the producer ends here, and one from the consumer
(its ``ready``) ends here too; the producer and the consumer no longer see each other's logic.

When the consumer stalls, the beat the producer offered in the same cycle (it saw ``ready``
from the cycle before) is kept in the skid register; the producer then sees ``ready`` low
until the skid register drains. One beat passes per cycle while the consumer takes them, and
beats leave in the order they came. Latency is one cycle.

Tested by ``tests/test_skid_buffer.py`` (random stalls on both sides, order kept, one beat per
cycle without stalls).
"""

from amaranth.hdl import Module, Mux, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Two-entry registered stream stage.

    Parameters
    ----------
    shape : shape-like
        The payload shape (e.g. a ``data.StructLayout``).
    enable_groups : int
        Copies of the output's valid flag, each enabling an equal part of the output register
        (for a wide payload whose flip-flops spread over many columns: no one enable net spans
        them all). The stage behaves the same for any number.

    Ports
    -----
    i_stream : In(stream.Signature(shape))
        From the producer; ``ready`` is a register.
    o_stream : Out(stream.Signature(shape))
        To the consumer; ``valid`` and ``payload`` are registers.
    busy : Out(1)
        A beat is held (in either register).
    """

    def __init__(self, shape, enable_groups=1):
        try:
            signature = stream.Signature(shape)
        except TypeError as exc:
            raise TypeError(f"Skid buffer payload must be a shape, not {shape!r}") from exc
        width = Shape.cast(shape).width
        if isinstance(enable_groups, bool) or not isinstance(enable_groups, int) or \
                not 1 <= enable_groups <= max(width, 1):
            raise ValueError(f"Enable groups must be an integer from 1 to the payload's width "
                             f"({width}), not {enable_groups!r}")
        self._shape = shape
        self._groups = enable_groups
        super().__init__({"i_stream": In(signature), "o_stream": Out(signature),
                          "busy": Out(1)})

    @property
    def shape(self):
        return self._shape

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        skid_valid = Signal()
        # Two more copies of skid_valid, for its two wide uses: the skid register's enable
        # (skid_hold) and the output register's input select (skid_sel). Each copy's next
        # value comes from its own output, so Yosys keeps them apart, and skid_valid itself
        # drives only i_stream.ready and busy: the producer's handshake logic does not wait
        # for a net that spans a few hundred flip-flops.
        skid_hold = Signal()
        skid_sel = Signal()
        skid = Signal.like(i.payload, name="skid")
        out_valid = Signal()
        out = Signal.like(i.payload, name="out")
        m.d.comb += [i.ready.eq(~skid_valid), o.valid.eq(out_valid), o.payload.eq(out),
                     self.busy.eq(out_valid | skid_valid)]
        # The output register moves on: the held beat goes first, then the new one. The skid
        # register is filled when the output stalls and the producer offers a beat (it saw
        # ``ready``, so the register was empty), and empties as the output moves on.
        move = ~out_valid | o.ready
        for flag in (skid_valid, skid_hold, skid_sel):
            m.d.sync += flag.eq(~move & (flag | i.valid))
        # The output register, a group of its bits at a time, each enabled by its own copy of
        # out_valid (the first group's is out_valid itself). Each copy's next value depends on
        # itself, so Yosys keeps them apart.
        out_bits, skid_bits, in_bits = (Value.cast(v) for v in (out, skid, i.payload))
        width, groups = len(out_bits), self._groups
        for g in range(groups):
            lo, hi = width * g // groups, width * (g + 1) // groups
            valid_g = out_valid if g == 0 else Signal(name=f"out_valid{g}")
            with m.If(~valid_g | o.ready):
                m.d.sync += [out_bits[lo:hi].eq(Mux(skid_sel, skid_bits[lo:hi], in_bits[lo:hi])),
                             valid_g.eq(skid_valid | i.valid)]
        # The skid register follows the input while it is empty (its contents matter only
        # once skid_valid is set), so its hundreds of enables come from one flip-flop.
        with m.If(~skid_hold):
            m.d.sync += skid.eq(i.payload)
        return m
