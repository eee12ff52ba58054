"""The store unit's int8 parameter records: from bus beats or on-chip memory to the requantizer.

A parameter record (multiplier, bias, shift: ``PARAM_RECORD_BYTES``) is assembled in ``rec``
from the bus beats of a parameter-table read, and its shift is checked against
[``SHIFT_MIN``, ``SHIFT_MAX``]. The store unit's controller (``octet.hdl.store_unit``) walks
the states; this block keeps the records and answers it with flags:

* validation (``validate``): every beat is taken and judged a cycle later from registers
  (``beat_*``); a good record of a table that fits on chip is written to the memory below.
* loading (``load``): one record per channel is offered to the requantizer on ``o_params``,
  from the on-chip memory (one per cycle) or from the bus (assembled again, then checked).

The on-chip memory holds the ``param_slots`` **parameter slots** in rows ``[0, param_slots)``
(they persist across instructions and programs: KEEP writes them, SLOTS reads them) and, in
the ``cache_records`` rows after them, the temporary copy of a table of at most that many
records, so that each of its records crosses the bus once.

Tested through the store unit by the accelerator tests (``tests/test_accelerator_rtl.py``).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from octet.isa import PARAM_RECORD_BYTES
from octet.numerics import SHIFT_MAX, SHIFT_MIN

from .layouts import requant_param_layout

__all__ = ["StoreParams"]


class StoreParams(wiring.Component):
    """Parameter records of an int8 STORE: assembly, checks, on-chip copy, requantizer feed.

    Parameters
    ----------
    cols : int
        Requantizer lanes (C).
    bus_bytes : int
        Bytes per bus beat (B).
    param_slots : int
        Parameter slots (S).
    cache_records : int
        Records of the temporary on-chip copy (P).

    Ports
    -----
    start : In(1)
        A new instruction: take ``cache_table`` and ``slot_base``.
    cache_table : In(1)
        The instruction's table is (to be) in the on-chip memory.
    slot_base : In(16)
        Row of the instruction's first record in that memory.
    validate : In(1)
        Validation: take every beat offered, judge it a cycle later (``beat_*``).
    held : In(1)
        An error is held: write no more records to the memory.
    rewind : In(1)
        With ``validate``: validation is over, serve the requantizer from ``slot_base`` again.
    tile, tile_width : In(1), In(range(C + 1))
        A new n-tile of ``tile_width`` valid channels: start at lane 0.
    load, width : In(1), In(range(C + 1))
        Load the requantizer (``width`` valid channels; zeros in the others).
    zero_point : In(signed(8)), relu : In(1)
        The instruction's, sent with every record.
    rows_idle : In(1)
        The row path is idle (the previous tile's rows are in the requantizer).
    bus_valid, bus_error : In(1), bus_data : In(8B)
        The parameter read's beat (the controller drives its ``ready``).
    o_params : Out(stream.Signature(requant_param_layout()))
    cached : Out(1)
        The instruction's table is in the on-chip memory.
    p_read, p_valid : Out(1)
        Loading wants a bus beat; offers a record.
    rec_bad : Out(1)
        Loading: ``rec`` is a complete record from the bus with a bad shift.
    lane_is_last : Out(1)
        Loading: the lane offered is the last (C - 1).
    beat_valid, beat_error, beat_last, beat_bad : Out(1)
        Validation, the beat of the cycle before: valid, bus error, completes a record, that
        record's shift is bad.
    """

    def __init__(self, cols, bus_bytes, param_slots, cache_records):
        self._cols, self._bus_bytes = cols, bus_bytes
        self._slots, self._cache = param_slots, cache_records
        C, B = cols, bus_bytes
        super().__init__({
            "start": In(1), "cache_table": In(1), "slot_base": In(16),
            "validate": In(1), "held": In(1), "rewind": In(1),
            "tile": In(1), "tile_width": In(range(C + 1)),
            "load": In(1), "width": In(range(C + 1)),
            "zero_point": In(signed(8)), "relu": In(1), "rows_idle": In(1),
            "bus_valid": In(1), "bus_error": In(1), "bus_data": In(8 * B),
            "o_params": Out(stream.Signature(requant_param_layout())),
            "cached": Out(1), "p_read": Out(1), "p_valid": Out(1), "rec_bad": Out(1),
            "lane_is_last": Out(1),
            "beat_valid": Out(1), "beat_error": Out(1), "beat_last": Out(1), "beat_bad": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C, B = self._cols, self._bus_bytes
        S, P = self._slots, self._cache
        cached = self.cached         # this instruction's table is in the copy or the slots
        lane = Signal(range(C + 1))
        # The lane compares, kept as registers (updated with lane): lane < width, lane < C
        # and lane == C - 1.
        lane_lt_width = Signal()
        lane_lt_c = Signal()
        lane_is_last = self.lane_is_last
        # Copies of cached and lane_lt_width for the record multiplexers (72 bits wide), so
        # the flags' own fan-out stays small; reset-less, which also keeps Yosys from merging
        # them with the flags (both are set before they are read).
        cached_sel = Signal(reset_less=True)
        width_sel = Signal(reset_less=True)
        rec_full = Signal()          # loading: rec_beats == per_record
        rec_bad = self.rec_bad
        rec = Signal(8 * PARAM_RECORD_BYTES)
        rec_beats = Signal(range(PARAM_RECORD_BYTES // min(B, 16) + 1))
        per_record = max(1, PARAM_RECORD_BYTES // B)
        # The record completed by the beat on the bus (with the beats before it).
        incoming = Signal(8 * PARAM_RECORD_BYTES)
        m.d.comb += incoming.eq(Cat(rec, self.bus_data)[8 * B:] if B < 16 else
                                self.bus_data[:128])
        in_shift = incoming[64:72].as_signed()
        last_beat = rec_beats == per_record - 1
        m.d.sync += self.beat_valid.eq(0)

        w_index = Signal(range(max(S + P, 1)))
        r_index = Signal(range(max(S + P, 1)))
        r_next = Signal(range(max(S + P, 1) + 1))    # r_index + 1, set with r_index
        advance = Signal()           # the requantizer takes a record from the memory
        if S + P:
            m.submodules.param_cache = cache = Memory(shape=72, depth=S + P, init=[])
            cache_w = cache.write_port()
            # Two read ports, at r_index and r_index + 1 (both registers, so the handshake
            # that advances r_index does not run on into the memory's address): the record
            # at r_index is the second port's if r_index advanced in the cycle before, else
            # the first's, in every cycle after r_index settles.
            cache_r = cache.read_port(transparent_for=())
            cache_r1 = cache.read_port(transparent_for=())
            advanced = Signal()
            m.d.sync += advanced.eq(advance)
            m.d.comb += [cache_w.addr.eq(w_index), cache_w.data.eq(rec[:72]),
                         cache_r.addr.eq(r_index), cache_r1.addr.eq(r_next),
                         cache_r.en.eq(1), cache_r1.en.eq(1)]
            cached_rec = Mux(advanced, cache_r1.data, cache_r.data)
        else:
            cached_rec = Signal(72)

        # Loading's handshakes, from registers: a bus beat is wanted, a record is offered.
        p_read, p_valid = self.p_read, self.p_valid
        m.d.comb += [
            p_read.eq(~cached & lane_lt_width & ~rec_full),
            # The previous n-tile's rows must all be in the requantizer before its
            # parameters change (it only holds back rows already in its pipeline).
            p_valid.eq((cached | ~lane_lt_width | rec_full) & lane_lt_c & self.rows_idle),
        ]

        # The strobes are the controller's states, one at a time: one If/Elif chain, so each
        # register's enable is the OR of its strobes' conditions.
        slot_base = self.slot_base
        with m.If(self.start):
            m.d.sync += [lane.eq(0), rec_beats.eq(0), cached.eq(self.cache_table),
                         cached_sel.eq(self.cache_table),
                         w_index.eq(slot_base), r_index.eq(slot_base),
                         r_next.eq(slot_base + 1)]
        with m.Elif(self.validate):
            m.d.sync += [self.beat_valid.eq(self.bus_valid),
                         self.beat_error.eq(self.bus_error), self.beat_last.eq(last_beat),
                         self.beat_bad.eq((in_shift < SHIFT_MIN) | (in_shift > SHIFT_MAX))]
            with m.If(self.bus_valid):
                m.d.sync += [rec.eq(incoming), rec_beats.eq(Mux(last_beat, 0, rec_beats + 1))]
            with m.If(self.beat_valid & self.beat_last):
                m.d.sync += w_index.eq(w_index + 1)
                bad = self.beat_error | self.beat_bad
                if S + P:
                    m.d.comb += cache_w.en.eq(cached & ~self.held & ~bad)
            with m.If(self.rewind):
                m.d.sync += [r_index.eq(slot_base), r_next.eq(slot_base + 1)]
        with m.Elif(self.tile):
            w = self.tile_width
            m.d.sync += [lane.eq(0), lane_lt_width.eq(w != 0), width_sel.eq(w != 0),
                         lane_lt_c.eq(1),
                         lane_is_last.eq(C == 1), rec_beats.eq(0), rec_full.eq(0),
                         rec_bad.eq(0)]
        with m.Elif(self.load):
            # From the on-chip memory (one record per cycle) or from the bus.
            src = Mux(cached_sel, cached_rec, rec[:72])
            shift = src[64:72].as_signed()
            params = self.o_params
            m.d.comb += [
                params.valid.eq(p_valid),
                params.payload.multiplier.eq(Mux(width_sel, src[0:32], 0)),
                params.payload.bias.eq(Mux(width_sel, src[32:64], 0)),
                params.payload.shift.eq(Mux(width_sel, shift, 0)),
                params.payload.zero_point.eq(self.zero_point),
                params.payload.relu.eq(self.relu),
            ]
            with m.If(self.bus_valid & p_read):
                m.d.sync += [rec.eq(incoming), rec_beats.eq(rec_beats + 1),
                             rec_full.eq(last_beat),
                             rec_bad.eq(last_beat &
                                        ((in_shift < SHIFT_MIN) | (in_shift > SHIFT_MAX)))]
            # Only records from the bus are checked here (the memory's were checked once);
            # a bad one stops the unit (the controller), so no lane moves on.
            # (rec_bad implies a record from the bus, complete, for lane < width.)
            with m.If(rec_bad & self.rows_idle):
                pass
            with m.Elif(p_valid & params.ready):
                m.d.sync += [lane.eq(lane + 1), rec_beats.eq(0), rec_full.eq(0),
                             rec_bad.eq(0), lane_lt_width.eq(lane + 1 < self.width),
                             width_sel.eq(lane + 1 < self.width),
                             lane_lt_c.eq(~lane_is_last), lane_is_last.eq(lane == C - 2)]
                with m.If(lane_lt_width & cached):
                    m.d.comb += advance.eq(1)
                    m.d.sync += [r_index.eq(r_next), r_next.eq(r_next + 1)]
        return m
