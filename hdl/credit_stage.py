"""A registered stream stage fed on credits: the producer never sees the stage's state directly.

The producer sends a beat (``valid`` with ``payload``) only while it holds a credit; it starts
with :attr:`CreditStage.CAPACITY` credits and gets one back for each ``freed`` pulse. So the
stage has no ``ready`` towards the producer, and the producer's decision to send (which enables
its wide output register) comes from its own flip-flops; the stage's only signal back,
``freed``, is a flip-flop that goes into the producer's small credit counter.

Inside, beats go straight to the output register when it is free and nothing is held, else into
one of two holding registers (taken out oldest first). Optionally the stage also registers a
one-bit decode of the payload (``flag``) beside its output register, so a consumer whose
``ready`` depends on that decode gets it from a flip-flop rather than through logic after the
wide output register (whose enable is that ``ready``). The holding registers follow the input
while empty, so their enables are flip-flops; only the output register's enable depends on the
consumer's ``ready``. Three entries cover the credit loop (send, output register, ``freed``,
credit counter), so one beat passes per cycle while the consumer takes them. Latency is one
cycle.

With ``half_rate`` the output register loads only while empty, so its enable is a flip-flop
too and the consumer's ``ready`` reaches nothing but two flip-flops (the output's valid flag
and ``freed``): a consumer whose ``ready`` comes through logic far from the wide output
register then does not drive its enable. A beat then passes at most every other cycle (the
output register empties in the cycle after it is taken), which suits a consumer that takes
at most every other cycle anyway, such as a unit that works on each instruction for several
cycles; the latency through an empty stage is still one cycle.

Tested by ``tests/test_credit_stage.py`` (random stalls on both sides with a credit-counting
producer, order kept, one beat per cycle without stalls, outputs from flip-flops, the flag
matching the output payload).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CreditStream", "CreditStage", "CreditSender"]


class CreditStream(wiring.Signature):
    """A producer's side of a credit-based stream.

    Members (producer's view): ``valid`` Out(1), ``payload`` Out(shape) and ``freed`` In(1),
    one pulse per slot the receiver frees (a returned credit).
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"valid": Out(1), "payload": Out(shape), "freed": In(1)})

    @property
    def shape(self):
        return self._shape

    def __eq__(self, other):
        return type(other) is type(self) and other._shape == self._shape

    def __hash__(self):
        return hash((type(self), repr(self._shape)))


class CreditStage(wiring.Component):
    """Three-entry registered stream stage with a credit interface towards the producer.

    Parameters
    ----------
    shape : shape-like
        The payload shape (e.g. a ``data.StructLayout``).
    flag : callable or None
        If given, ``flag(payload)`` (payload a value of ``shape``) returns a one-bit value,
        registered as ``o_flag`` beside the output register.
    half_rate : bool
        The output register loads only while empty (its enable a flip-flop); at most one
        beat per two cycles.

    Ports
    -----
    i_stream : In(CreditStream(shape))
        From the producer, which sends only while it holds one of :attr:`CAPACITY` credits;
        ``freed`` (a register) returns one.
    o_stream : Out(stream.Signature(shape))
        To the consumer; ``valid`` and ``payload`` are registers.
    busy : Out(1)
        A beat is held.
    o_flag : Out(1)
        Only with ``flag``: ``flag(o_stream.payload)``, a register.
    """

    #: Credits the producer starts with (the number of beats the stage can hold).
    CAPACITY = 3

    def __init__(self, shape, flag=None, half_rate=False):
        try:
            signature = stream.Signature(shape)
        except TypeError as exc:
            raise TypeError(f"Credit stage payload must be a shape, not {shape!r}") from exc
        if flag is not None and not callable(flag):
            raise TypeError(f"Credit stage flag must be a callable or None, not {flag!r}")
        if not isinstance(half_rate, bool):
            raise TypeError(f"Credit stage half_rate must be a bool, not {half_rate!r}")
        self._half_rate = half_rate
        self._shape = shape
        self._flag = flag
        members = {"i_stream": In(CreditStream(shape)), "o_stream": Out(signature),
                   "busy": Out(1)}
        if flag is not None:
            members["o_flag"] = Out(1)
        super().__init__(members)

    @property
    def shape(self):
        return self._shape

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        out_valid = Signal()
        out = Signal.like(i.payload, name="out")
        held = [Signal.like(i.payload, name=f"held{k}") for k in range(2)]
        held_valid = [Signal(name=f"held{k}_valid") for k in range(2)]
        any_held = Signal()                  # held_valid[0] | held_valid[1], as a register
        head = Signal()                      # the older holding register
        tail = Signal()                      # the holding register the next beat goes to
        freed = Signal()
        m.d.comb += [o.valid.eq(out_valid), o.payload.eq(out), i.freed.eq(freed),
                     self.busy.eq(out_valid | any_held)]
        m.d.sync += freed.eq(out_valid & o.ready)

        # The output register takes the next beat (with half_rate: only while empty).
        move = ~out_valid if self._half_rate else ~out_valid | o.ready
        # Held beats are older than the incoming one, so while any is held the new beat is
        # held too (and when the output register stays put).
        to_held = i.valid & (any_held | ~move)
        leave = move & any_held              # the head beat moves to the output register
        next_valid = [Signal(name=f"held{k}_valid_next") for k in range(2)]
        for k in range(2):
            m.d.comb += next_valid[k].eq((held_valid[k] & ~(leave & (head == k))) |
                                         (to_held & (tail == k)))
            m.d.sync += held_valid[k].eq(next_valid[k])
            # A holding register follows the input while empty, so its enable is a register.
            with m.If(~held_valid[k]):
                m.d.sync += held[k].eq(i.payload)
        m.d.sync += any_held.eq(next_valid[0] | next_valid[1])
        with m.If(leave):
            m.d.sync += head.eq(~head)
        with m.If(to_held):
            m.d.sync += tail.eq(~tail)
        with m.If(move):
            m.d.sync += [out.eq(Mux(any_held, Mux(head, held[1], held[0]), i.payload)),
                         out_valid.eq(any_held | i.valid)]
        if self._half_rate:
            with m.Elif(o.ready):
                m.d.sync += out_valid.eq(0)
        if self._flag is not None:
            # Decoded from the beat as it enters the output register, with the same enable.
            flags = [Signal(name=f"held{k}_flag") for k in range(2)]
            in_flag = Signal(name="in_flag")
            m.d.comb += [in_flag.eq(self._flag(i.payload)),
                         flags[0].eq(self._flag(held[0])), flags[1].eq(self._flag(held[1]))]
            out_flag = Signal(name="out_flag")
            m.d.comb += self.o_flag.eq(out_flag)
            with m.If(move):
                m.d.sync += out_flag.eq(Mux(any_held, Mux(head, flags[1], flags[0]), in_flag))
        return m


class CreditSender:
    """A producer's credit count for a :class:`CreditStage`, with ``can_send`` a flip-flop.

    The producer sends (``valid``) only while ``can_send``; :meth:`count` keeps the credits:
    :attr:`CreditStage.CAPACITY` at the start, one less per beat sent, one more per ``freed``
    pulse. ``can_send`` is "a credit is left" for the next cycle, ANDed with ``allow`` (say
    "not halted").

    Parameters
    ----------
    name : str
        Prefix of the two registers' names (``<name>_credits``, ``<name>_can_send``).
    """

    def __init__(self, name):
        self.credits = Signal(range(CreditStage.CAPACITY + 1), init=CreditStage.CAPACITY,
                              name=f"{name}_credits")
        self.can_send = Signal(init=1, name=f"{name}_can_send")

    def count(self, m, send, freed, allow=1):
        """Update the credits in ``m`` for this cycle's ``send`` and ``freed``."""
        credits_next = self.credits - send + freed
        m.d.sync += [self.credits.eq(credits_next),
                     self.can_send.eq((credits_next != 0) & allow)]
