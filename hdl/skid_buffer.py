"""A registered stream stage at full throughput: a skid buffer.

Every output of the stage comes from a flip-flop: ``o_stream.valid`` and ``o_stream.payload``
from the output register and ``i_stream.ready`` from "the skid register is empty". So a long
combinational valid/ready/payload chain from the producer ends here, and one from the consumer
(its ``ready``) ends here too; the producer and the consumer no longer see each other's logic.

When the consumer stalls, the beat the producer offered in the same cycle (it saw ``ready``
from the cycle before) is kept in the skid register; the producer then sees ``ready`` low
until the skid register drains. One beat passes per cycle while the consumer takes them, and
beats leave in the order they came. Latency is one cycle.

A wide stage can be split into lanes (``lane_bits``): each lane of the payload has its own
copies of the two valid flags, with identical next-state logic, so the clock enables of a
lane's registers come from flip-flops of that lane. One enable net for a whole 256-bit row
spreads over the chip as far as the row's consumers (an int32 row feeds eight requantizer
lanes whose DSP blocks sit in rows across the ECP5); per-lane copies let the placer keep each
net short. The copies carry the name mark :data:`~octet.hdl.keep.KEEP_MARK`, which the FPGA
flow marks ``keep`` so that Yosys does not merge them back into one flip-flop.

Tested by ``tests/test_skid_buffer.py`` (random stalls on both sides, order kept, one beat per
cycle without stalls, with and without lanes).
"""

from amaranth.hdl import Module, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .keep import kept_name

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Two-entry registered stream stage.

    Parameters
    ----------
    shape : shape-like
        The payload shape (e.g. a ``data.StructLayout``).
    lane_bits : int, optional
        Split the payload into lanes of this many bits (the last may be narrower), each with
        its own copies of the valid flags (default: one lane).

    Ports
    -----
    i_stream : In(stream.Signature(shape))
        From the producer; ``ready`` is a register.
    o_stream : Out(stream.Signature(shape))
        To the consumer; ``valid`` and ``payload`` are registers.
    busy : Out(1)
        A beat is held (in either register).
    """

    def __init__(self, shape, lane_bits=None):
        try:
            signature = stream.Signature(shape)
        except TypeError as exc:
            raise TypeError(f"Skid buffer payload must be a shape, not {shape!r}") from exc
        if lane_bits is not None and (isinstance(lane_bits, bool) or
                                      not isinstance(lane_bits, int) or lane_bits < 1):
            raise TypeError(f"Skid buffer lane_bits must be a positive integer or None, not "
                            f"{lane_bits!r}")
        self._shape = shape
        self._lane_bits = lane_bits
        super().__init__({"i_stream": In(signature), "o_stream": Out(signature),
                          "busy": Out(1)})

    @property
    def shape(self):
        return self._shape

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        width = Shape.cast(self._shape).width
        step = self._lane_bits or max(width, 1)
        bounds = [(lo, min(width, lo + step)) for lo in range(0, width, step)] or [(0, 0)]
        i_bits = Value.cast(i.payload)
        skid = Signal(width, name="skid")
        out = Signal(width, name="out")
        m.d.comb += Value.cast(o.payload).eq(out)
        flags = []
        for k, (lo, hi) in enumerate(bounds):
            skid_valid = Signal(name="skid_valid" if k == 0 else kept_name("skid_valid", k))
            out_valid = Signal(name="out_valid" if k == 0 else kept_name("out_valid", k))
            flags.append((skid_valid, out_valid))
            take = i.valid & ~skid_valid
            with m.If(~out_valid | o.ready):
                # The output register moves on: the held beat goes first, then the new one.
                with m.If(skid_valid):
                    m.d.sync += [out[lo:hi].eq(skid[lo:hi]), out_valid.eq(1),
                                 skid_valid.eq(0)]
                with m.Else():
                    m.d.sync += [out[lo:hi].eq(i_bits[lo:hi]), out_valid.eq(i.valid)]
            with m.Elif(take):
                m.d.sync += skid_valid.eq(1)
            # The skid register follows the input while it is empty (its contents matter
            # only once skid_valid is set), so its enables come from one flip-flop per lane.
            with m.If(~skid_valid):
                m.d.sync += skid[lo:hi].eq(i_bits[lo:hi])
        skid_valid, out_valid = flags[0]
        m.d.comb += [i.ready.eq(~skid_valid), o.valid.eq(out_valid),
                     self.busy.eq(out_valid | skid_valid)]
        return m
