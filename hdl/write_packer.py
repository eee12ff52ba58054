"""Write gearbox of the store unit: runs of row chunks at any byte address -> bus bursts.

A chunk is up to ``chunk_bytes`` bytes that go to device memory starting at byte ``addr``.
Chunks come in **runs**: the chunks of a run are contiguous in memory, in address order, and
the run is written as *one* bus write request covering its aligned beats (the AXI writer
splits it into bursts). The first chunk of a run (``first``) carries the run's length in
bytes (``run_bytes``) and issues the request; the last (``last``) closes it. A chunk that is
both is a run of its own, which is how rows that are not contiguous are written. Byte strobes
are set only on the chunks' bytes, so neighbouring bytes in memory are never touched.

Why runs: a STORE of one-byte rows (the attention scores, one per key) would otherwise cost
a bus request, a burst and a write response per byte; as a run its rows fill whole beats.

A chunk first passes a skid buffer (its bytes masked past ``nbytes``) and one of two slot
registers taken in turn (the bytes shifted to their offset in a beat, ``addr`` modulo the bus
width; a slot follows the skid buffer while empty, so neither stage's enables depend on the
insertion decision). It then goes
into a buffer of two beats plus a chunk, at that offset in the first or the second beat:
since a run is contiguous from a beat boundary, that is right after the bytes already held,
so placing it is a choice of two rather than a shift by any byte count (this is the
timing-critical loop: the buffer's fill level decides where the next chunk goes). A chunk is
taken whenever fewer than two beats are waiting, and a full beat leaves every cycle the bus
takes it, so chunks of up to a beat stream at one per cycle. ``i_chunk.ready`` is a register.

``flush`` ends an open run whose remaining chunks will never come (the store unit stopped on
an error): the beats the request still owes are sent with their missing bytes unstrobed, so
the bus transaction completes and nothing else is written.

Tested by ``tests/test_write_packer.py`` (Amaranth simulator) and through the accelerator
tests.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .or_tree import or_tree
from .skid_buffer import SkidBuffer
from .unit_ports import BusRequest

__all__ = ["WritePacker"]

# Bytes per copy of a slot's valid flag and of the head select (and of the buffer's selects).
_GROUP_BYTES = 8
# Copies of the input skid buffer's output valid flag, each enabling ~60 of its ~350 output
# flip-flops (the fifteenth timing round's seed-2 worst enables).
_ENABLE_GROUPS = 6


class WritePacker(wiring.Component):
    """Chunks in, one bus request per run and strobed beats out.

    Parameters
    ----------
    bus_bytes, chunk_bytes : int

    Ports
    -----
    i_chunk : In(stream.Signature({"data": 8*chunk_bytes, "addr": 32, "nbytes": ...,
                                   "first": 1, "last": 1, "run_bytes": 16}))
        ``addr`` is every chunk's address (contiguous within a run); ``run_bytes`` is used
        on the first chunk of a run only.
    o_req : Out(BusRequest())
    o_beat : Out(stream.Signature({"data": 8*bus_bytes, "strb": bus_bytes}))
    flush : In(1)
        No more chunks will come: finish the open run with unstrobed beats.
    busy : Out(1)
    """

    def __init__(self, bus_bytes, chunk_bytes):
        if bus_bytes not in (1, 2, 4, 8, 16, 32, 64):
            raise TypeError(f"Bus width must be a power of two number of bytes, not "
                            f"{bus_bytes!r}")
        if not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise TypeError(f"Chunk size must be a positive integer, not {chunk_bytes!r}")
        self._bus = bus_bytes
        self._chunk = chunk_bytes
        super().__init__({
            "i_chunk": In(stream.Signature(data.StructLayout({
                "data": 8 * chunk_bytes, "addr": 32, "nbytes": range(chunk_bytes + 1),
                "first": 1, "last": 1, "run_bytes": 16}))),
            "o_req": Out(BusRequest()),
            "o_beat": Out(stream.Signature(data.StructLayout({"data": 8 * bus_bytes,
                                                              "strb": bus_bytes}))),
            "flush": In(1),
            "busy": Out(1),
        })

    @property
    def bus_bytes(self):
        return self._bus

    @property
    def chunk_bytes(self):
        return self._chunk

    def elaborate(self, platform):
        m = Module()
        B, W = self._bus, self._chunk
        lg = (B - 1).bit_length()
        size = 2 * B + W                      # bytes the buffer can hold
        level = Signal(range(size + 1))       # bytes in the buffer (from the beat's start)
        beats_left = Signal(17)               # beats the open run still owes the bus
        closed = Signal()                     # the run's last chunk is in (or flushed)
        req_pending = Signal()
        req_addr = Signal(32)
        req_beats = Signal(17)

        # Two input stages, so that the insertion below starts from registers:
        # 1. a skid buffer (its ``ready`` is a register, so the upstream FIFOs' handshakes do
        #    not wait for this one) takes the chunk masked past ``nbytes``, with the run's
        #    beats counted;
        # 2. a slot holds it shifted to its offset in a beat: the bytes of a run are
        #    contiguous from a beat's start, so a chunk continuing the run goes at `level`,
        #    which is its offset or its offset plus a beat.
        chunk = self.i_chunk.payload
        offset = chunk.addr[:lg] if lg else Const(0, 1)
        # A thermometer code: a compare per byte, no carry chain.
        mask = Cat(*(chunk.nbytes > i for i in range(W)))
        # Bytes past `nbytes` may hold anything (the unused lanes of a row); they must not
        # reach the buffer, where the next chunks' bytes go.
        valid_data = Cat(*(Mux(mask[i], chunk.data[8 * i:8 * i + 8], 0) for i in range(W)))
        m.submodules.skid = skid = SkidBuffer(data.StructLayout({
            "data": 8 * W, "mask": W, "offset": max(lg, 1), "nbytes": range(W + 1),
            "first": 1, "last": 1, "addr": 32, "run_beats": 17}), enable_groups=_ENABLE_GROUPS)
        m.d.comb += [skid.i_stream.valid.eq(self.i_chunk.valid),
                     self.i_chunk.ready.eq(skid.i_stream.ready),
                     skid.i_stream.payload.data.eq(valid_data),
                     skid.i_stream.payload.mask.eq(mask),
                     skid.i_stream.payload.offset.eq(offset),
                     skid.i_stream.payload.nbytes.eq(chunk.nbytes),
                     skid.i_stream.payload.first.eq(chunk.first),
                     skid.i_stream.payload.last.eq(chunk.last),
                     skid.i_stream.payload.addr.eq(chunk.addr & ~(B - 1)),
                     skid.i_stream.payload.run_beats.eq(
                         (offset + chunk.run_bytes + B - 1) >> lg)]
        k = skid.o_stream.payload

        # The staged chunk: two slots, filled alternately, taken alternately. A slot follows
        # the skid buffer's output while it is empty (so its ~400 enables are its own valid
        # flag), and the skid buffer moves on when the slot it fills next is empty (a
        # flip-flop): neither depends on the insertion decision below. `rp` picks the head.
        slot_valid = [Signal(name=f"slot{j}_valid") for j in range(2)]
        wp = Signal()                        # the slot filled next
        rp = Signal()                        # the head slot
        # Copies of `slot_valid` and `rp`, one per group of the slots' bytes: each enables a
        # group's flip-flops or selects a group's head bytes, so that none of these nets spans
        # the whole packer (the thirteenth timing round's worst paths: `rp` to ~400
        # multiplexers across 72 columns). Each copy's next value depends on itself, so
        # Yosys keeps them apart.
        spans = _spans(W + B)
        slot_held = [[Signal(name=f"slot{j}_held{g}") for g in range(len(spans))]
                     for j in range(2)]
        rp_copies = [Signal(name=f"rp{g}") for g in range(len(spans))]
        slots = []
        for j in range(2):
            slot = {"data": Signal(8 * (W + B), name=f"slot{j}_data"),
                    "mask": Signal(W + B, name=f"slot{j}_mask"),
                    "nbytes": Signal(range(W + 1), name=f"slot{j}_nbytes"),
                    "first": Signal(name=f"slot{j}_first"),
                    "last": Signal(name=f"slot{j}_last"),
                    "addr": Signal(32, name=f"slot{j}_addr"),
                    "run_beats": Signal(17, name=f"slot{j}_run_beats"),
                    "run_one": Signal(name=f"slot{j}_run_one"),
                    "run_nz": Signal(name=f"slot{j}_run_nz")}
            # A first chunk's fill level (offset + nbytes), with its level flags.
            slot_level = _Level(m, f"first{j}", size)
            # The bytes (data and mask) are loaded a group at a time, each group under its
            # own copy of the slot's valid flag, so no one flip-flop enables all ~400.
            shifted_data = k.data << (k.offset * 8)
            shifted_mask = k.mask << k.offset
            for held, (lo, hi) in zip(slot_held[j], spans, strict=True):
                with m.If(~held):
                    m.d.sync += [slot["data"][8 * lo:8 * hi].eq(shifted_data[8 * lo:8 * hi]),
                                 slot["mask"][lo:hi].eq(shifted_mask[lo:hi])]
            with m.If(~slot_valid[j]):
                m.d.sync += [slot["nbytes"].eq(k.nbytes),
                             slot["first"].eq(k.first), slot["last"].eq(k.last),
                             slot["addr"].eq(k.addr), slot["run_beats"].eq(k.run_beats),
                             slot["run_one"].eq(k.run_beats == 1),
                             slot["run_nz"].eq(k.run_beats != 0)]
                slot_level.load(k.offset + k.nbytes, B)
            slots.append((slot, slot_level))

        def head(field):
            return Mux(rp, slots[1][0][field], slots[0][0][field])

        s_valid = Mux(rp, slot_valid[1], slot_valid[0])
        s_nbytes = head("nbytes")
        s_first, s_last, s_addr = head("first"), head("last"), head("addr")
        s_run_beats, s_run_one, s_run_nz = head("run_beats"), head("run_one"), head("run_nz")
        first_level = _HeadLevel(rp, slots[0][1], slots[1][1])

        # The fill level is kept with registered flags (level >= B, level < 2B), and each next
        # value comes from candidates computed in parallel from registers (the level kept, the
        # first chunk's, the level plus the staged chunk's bytes, each less a beat if one
        # leaves): the insertion decision and the beat's departure only select.
        level_ge_b = Signal()                # level >= B
        level_lt_2b = Signal(init=1)         # level < 2B
        last_beat = Signal()                 # beats_left == 1

        # Whether a run is open (beats_left != 0), kept as a register.
        open_ = Signal()
        idle = ~open_ & ~req_pending
        # A chunk is inserted when it starts a run and none is open, or continues the open one
        # while fewer than two beats wait (from registers only).
        take = Signal()
        m.d.comb += take.eq(s_valid & Mux(s_first, idle, open_ & ~closed & level_lt_2b))
        m.d.comb += skid.o_stream.ready.eq(~Mux(wp, slot_valid[1], slot_valid[0]))
        fill = skid.o_stream.valid & skid.o_stream.ready
        with m.If(fill):
            m.d.sync += wp.eq(~wp)
        with m.If(take):
            m.d.sync += rp.eq(~rp)
        m.d.sync += [copy.eq(copy ^ take) for copy in rp_copies]
        for j in range(2):
            filled, taken = fill & (wp == j), take & (rp == j)
            with m.If(filled):
                m.d.sync += slot_valid[j].eq(1)
            with m.Elif(taken):
                m.d.sync += slot_valid[j].eq(0)
            m.d.sync += [held.eq(filled | (held & ~taken)) for held in slot_held[j]]
        # A chunk in the input stages belongs to the open run (or a later one): it goes in
        # before a flush closes the run.
        staged = slot_valid[0] | slot_valid[1] | skid.busy

        # A beat leaves when it is full, or when the run is closed (its last, partial beat,
        # or unstrobed beats after a flush).
        m.d.comb += self.o_beat.valid.eq(open_ & (level_ge_b | closed))
        fire = self.o_beat.valid & self.o_beat.ready

        # Insert the chunk at its offset in the first beat (a run's first chunk), or after the
        # bytes held: the same offset, in the second beat if a full one waits. Then drop the
        # beat that left. So the byte shifter is a choice of two, not of 2B positions.
        #
        # The byte buffer runs a cycle behind this control: the decisions (take, which beat,
        # a run's start, a beat leaving) are registered as selects and applied the next cycle
        # to `lag_buf`, with the chunk's bytes as they were (`op_data`). So every one of the
        # buffer's ~450 flip-flops is fed by a few LUTs from registers, and no decision logic
        # sits in front of that wide fan-out. `lag_next` is the buffer as this control sees it
        # (`buf` of the cycle); its first beat is the beat on `o_beat`.
        op_data = Signal(8 * (W + B))       # the head slot's bytes, a cycle later
        op_mask = Signal(W + B)
        for copy, (lo, hi) in zip(rp_copies, spans, strict=True):
            m.d.sync += [
                op_data[8 * lo:8 * hi].eq(Mux(copy, slots[1][0]["data"][8 * lo:8 * hi],
                                              slots[0][0]["data"][8 * lo:8 * hi])),
                op_mask[lo:hi].eq(Mux(copy, slots[1][0]["mask"][lo:hi],
                                      slots[0][0]["mask"][lo:hi]))]
        lag_buf = Signal(8 * size)
        lag_strb = Signal(size)
        lag_next = Signal(8 * size)
        strb_next = Signal(size)
        # The buffer's next byte i is one of five sources: the byte held at i (kept) or at i + B
        # (kept, a beat left), or the chunk's byte at i + B (inserted low, a beat left), at i
        # (low, or high and a beat left) or at i - B (high). The five selects are registered
        # once per group of the buffer's bytes (the fourteenth timing round's worst path was
        # one select register to ~430 LUTs across 22 columns), each group's from its own copy
        # of the head select, so Yosys keeps them apart.
        for g, (lo, hi) in enumerate(_spans(size)):
            rp_g = Signal(name=f"rp_lag{g}")
            m.d.sync += rp_g.eq(rp_g ^ take)
            first_g = Mux(rp_g, slots[1][0]["first"], slots[0][0]["first"])
            take_g = Mux(rp_g, slot_valid[1], slot_valid[0]) & \
                Mux(first_g, idle, open_ & ~closed & level_lt_2b)
            keep_g = ~take_g | ~first_g      # keep the bytes held (no chunk, or one continuing)
            high_g = take_g & ~first_g & level_ge_b   # insert in the second beat
            low_g = take_g & ~high_g                  # insert in the first beat
            sel = {name: Signal(name=f"sel_{name}{g}")
                   for name in ("kept_up", "kept", "chunk_up", "chunk", "chunk_down")}
            m.d.sync += [sel["kept_up"].eq(keep_g & fire), sel["kept"].eq(keep_g & ~fire),
                         sel["chunk_up"].eq(low_g & fire),
                         sel["chunk"].eq(Mux(fire, high_g, low_g)),
                         sel["chunk_down"].eq(high_g & ~fire)]
            sources = (("kept_up", lag_buf, lag_strb, B), ("kept", lag_buf, lag_strb, 0),
                       ("chunk_up", op_data, op_mask, B), ("chunk", op_data, op_mask, 0),
                       ("chunk_down", op_data, op_mask, -B))
            for i in range(lo, hi):
                byte, strb = [], []
                for name, src, src_strb, shift in sources:
                    j = i + shift
                    if 0 <= j < len(src_strb):
                        byte.append(Mux(sel[name], src[8 * j:8 * j + 8], 0))
                        strb.append(sel[name] & src_strb[j])
                m.d.comb += [lag_next[8 * i:8 * i + 8].eq(or_tree(byte)),
                             strb_next[i].eq(or_tree(strb))]
        m.d.sync += [lag_buf.eq(lag_next), lag_strb.eq(strb_next)]
        m.d.comb += [self.o_beat.payload.data.eq(lag_next[:8 * B]),
                     self.o_beat.payload.strb.eq(strb_next[:B])]
        with m.If(fire):
            m.d.sync += [beats_left.eq(beats_left - 1), open_.eq(~last_beat),
                         last_beat.eq(beats_left == 2)]

        # The next level: kept, or the first chunk's, or grown by the staged chunk; a beat
        # less when one leaves (never below zero: a run's last beat takes what is left).
        kept = _Level(m, "kept", size)
        kept.compute(level, B)
        grown = _Level(m, "grown", size)
        grown.compute(level + s_nbytes, B)
        chosen = Mux(take, Mux(s_first, 1, 2), 0)
        for idx, cand in enumerate((kept, first_level, grown)):
            with m.If(chosen == idx):
                with m.If(fire):
                    m.d.sync += [level.eq(cand.less), level_ge_b.eq(cand.less_ge_b),
                                 level_lt_2b.eq(cand.less_lt_2b)]
                with m.Else():
                    m.d.sync += [level.eq(cand.value), level_ge_b.eq(cand.ge_b),
                                 level_lt_2b.eq(cand.lt_2b)]

        with m.If(take & s_first):
            m.d.sync += [beats_left.eq(s_run_beats), open_.eq(s_run_nz), last_beat.eq(s_run_one),
                         req_pending.eq(1), req_addr.eq(s_addr), req_beats.eq(s_run_beats),
                         closed.eq(s_last)]
        with m.Elif(take & s_last):
            m.d.sync += closed.eq(1)
        with m.Elif(self.flush & open_ & ~staged):
            m.d.sync += closed.eq(1)

        m.d.comb += [self.o_req.valid.eq(req_pending), self.o_req.payload.addr.eq(req_addr),
                     self.o_req.payload.beats.eq(req_beats)]
        with m.If(self.o_req.valid & self.o_req.ready):
            m.d.sync += req_pending.eq(0)
        m.d.comb += self.busy.eq(staged | open_ | req_pending)
        return m


def _spans(nbytes):
    """The (first, end) bytes of each group of :data:`_GROUP_BYTES` in ``nbytes`` bytes."""
    return [(lo, min(lo + _GROUP_BYTES, nbytes)) for lo in range(0, nbytes, _GROUP_BYTES)]


class _Level:
    """A candidate fill level with its flags, and the same less a beat (saturating at 0)."""

    def __init__(self, m, name, size):
        self._m = m
        self.value = Signal(range(size + 1), name=f"{name}_level")
        self.ge_b, self.lt_2b = Signal(name=f"{name}_ge_b"), Signal(name=f"{name}_lt_2b")
        self.less = Signal(range(size + 1), name=f"{name}_less")
        self.less_ge_b = Signal(name=f"{name}_less_ge_b")
        self.less_lt_2b = Signal(name=f"{name}_less_lt_2b")

    def _values(self, v, bus):
        less = Mux(v > bus, v - bus, 0)
        return [self.value.eq(v), self.ge_b.eq(v >= bus), self.lt_2b.eq(v < 2 * bus),
                self.less.eq(less), self.less_ge_b.eq(v >= 2 * bus),
                self.less_lt_2b.eq(v < 3 * bus)]

    def compute(self, v, bus):
        """Combinationally from ``v``."""
        self._m.d.comb += self._values(v, bus)

    def load(self, v, bus):
        """Registered from ``v`` (under the caller's condition)."""
        self._m.d.sync += self._values(v, bus)


class _HeadLevel:
    """The head slot's first-chunk level: the two slots' `_Level` registers, chosen by `rp`."""

    def __init__(self, rp, level0, level1):
        for field in ("value", "ge_b", "lt_2b", "less", "less_ge_b", "less_lt_2b"):
            setattr(self, field, Mux(rp, getattr(level1, field), getattr(level0, field)))
