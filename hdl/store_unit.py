"""Store unit: executes STORE, writing accumulator rows to device memory (int32 or int8).

Per instruction: check the accumulator rows, the destination bytes and (int8 mode) the
parameter table; wait for a compute->store token if ``pop_prev``; then, one n-tile of C channels at a
time, (int8) read the tile's parameter records from device memory into the requantizer, read
the tile's accumulator rows and send each row's valid channels, as int32 or requantized int8,
to the write packer, which writes exactly those bytes. After every write of the instruction
is acknowledged, a store->compute token is pushed if ``push_prev``.

In int8 mode every parameter record is read once before any row is written and a shift outside
[-31, 30] stops the instruction with MALFORMED. A table of at most ``store_param_cache``
records (the configuration's) is read in one request, at one record per 16 bytes of bus
beats, and kept in a small on-chip memory, from which the requantizer is loaded one channel
per cycle for each n-tile: every record crosses the bus once. A wider table is checked the
same way but read again from device memory, one n-tile at a time, to load the requantizer.

The same memory holds the ``param_slots`` **parameter slots** (rows ``[0, param_slots)``; the
temporary copy above lives in the rows after them): ``param_src`` KEEP reads and checks the
table as above but writes it into slots ``param_slot ..`` (which persist across instructions
and programs), and SLOTS serves the requantizer from those slots with no bus read at all.

A STORE whose bytes are contiguous (one row, or rows of at most C values back to back, such as
the attention scores' one byte per key) and that reads no records between its rows is one
*run* of the write packer: one bus request whose beats the rows fill, not a burst per row.

The checks and the table reads do not depend on the accumulators, so they happen *before* the
token wait, while the GEMM that produces the rows still runs: once the token arrives only the
requantization and the writes remain. An error found early is held and reported only when
the token has arrived, so the error seen (code, address, and which unit's comes first) is the
one of the documented order, check after token. (Only the store unit writes device memory
while a program runs, and its instructions run in order, so reading a table early reads the
same bytes.)

Tested against the golden ISA simulator by the accelerator tests.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import LAYOUTS, PARAM_RECORD_BYTES, ErrorCode, Opcode, ParamSource, StoreMode
from octet.numerics import SHIFT_MAX, SHIFT_MIN

from .requantizer import Requantizer
from .skid_buffer import SkidBuffer
from .spad_reader import SpadReader
from .store_checks import StoreChecks
from .unit_ports import BusRequest, ErrorReport, InstructionStream, MemRead
from .write_packer import WritePacker

__all__ = ["StoreUnit"]

STORE = LAYOUTS[Opcode.STORE]


class StoreUnit(wiring.Component):
    """The accelerator's store unit.

    Parameters
    ----------
    config : AcceleratorConfig

    Ports
    -----
    i_instr : In(InstructionStream())
    prev_available : In(1)
        A compute->store token is queued.
    pop_prev, push_prev : Out(1)
    mem_limit : In(33)
    halt : In(1)
    error : Out(ErrorReport())
    acc_r : Out(MemRead(32C, acc_rows))
    o_rreq : Out(BusRequest()), i_rdata : In(stream {data, error})
        Parameter-table reads.
    o_wreq : Out(BusRequest()), o_wdata : Out(stream {data, strb}), i_wdone : In(stream {error})
        Writes; one ``i_wdone`` per request.
    busy, waiting : Out(1)
    pc : Out(32)
        Address of the instruction being executed or waited for.
    bus_busy : Out(1)
        A write is being packed or awaits its response (must finish even after an error).
    """

    def __init__(self, config: AcceleratorConfig):
        self._cfg = config
        C, B = config.cols, config.bus_bytes
        super().__init__({
            "i_instr": In(InstructionStream()),
            "prev_available": In(1), "pop_prev": Out(1), "push_prev": Out(1),
            "mem_limit": In(33), "halt": In(1), "error": Out(ErrorReport()),
            "acc_r": Out(MemRead(32 * C, config.acc_rows)),
            "o_rreq": Out(BusRequest()),
            "i_rdata": In(stream.Signature(data.StructLayout({"data": 8 * B, "error": 1}))),
            "o_wreq": Out(BusRequest()),
            "o_wdata": Out(stream.Signature(data.StructLayout({"data": 8 * B, "strb": B}))),
            "i_wdone": In(stream.Signature(data.StructLayout({"error": 1}))),
            "busy": Out(1), "waiting": Out(1), "bus_busy": Out(1), "pc": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        C, B = cfg.cols, cfg.bus_bytes
        word = Signal(256)
        pc = Signal(32)
        m.d.comb += self.pc.eq(pc)
        ins = STORE(word)
        # The mode decoded as the word is taken: it selects the row path (requantizer or
        # straight) in front of the write packer, so it is a register of its own.
        int8 = Signal()
        # A copy of it for the row path's wide data mux, so the control copy fans out little.
        int8_rows = Signal()
        keep = int8 & (ins.param_src == ParamSource.KEEP)
        from_slots = int8 & (ins.param_src == ParamSource.SLOTS)

        m.submodules.requant = rq = Requantizer(C)
        # PARAMS offers records on `params`; a register stage passes them to the requantizer,
        # so the record (a block RAM read) and PARAMS' handshake logic end there instead of
        # running on into the requantizer's row handshake and the accumulator reader.
        params = rq.p_stream.signature.flip().create(path=("params",))
        params_held = Signal()
        m.d.comb += [params.ready.eq(~params_held | rq.p_stream.ready),
                     rq.p_stream.valid.eq(params_held)]
        with m.If(params.valid & params.ready):
            m.d.sync += [params_held.eq(1), rq.p_stream.payload.eq(params.payload)]
        with m.Elif(rq.p_stream.ready):
            m.d.sync += params_held.eq(0)
        m.submodules.acc_reader = reader = SpadReader(32 * C, cfg.acc_rows)
        wiring.connect(m, reader.mem, wiring.flipped(self.acc_r))
        # The rows leave the reader through a skid buffer, so the reader's FIFO (whose output
        # register is a whole row) is enabled from a register, not from the requantizer's or
        # the packer's handshake. rows_busy: a row is in the reader or in that stage.
        m.submodules.row_stage = row_stage = SkidBuffer(reader.o_row.payload.shape())
        wiring.connect(m, reader.o_row, row_stage.i_stream)
        rows_o = row_stage.o_stream
        # Int8 rows pass one more skid stage on their way into the requantizer, whose
        # `ready` (free room, no parameter beat pending) is logic at its lanes, across the
        # DSP rows: so the row stage's enable above depends on registers only.
        m.submodules.rq_stage = rq_stage = SkidBuffer(rq.i_stream.payload.shape())
        wiring.connect(m, rq_stage.o_stream, rq.i_stream)
        rows_busy = reader.busy | row_stage.busy | rq_stage.busy
        m.submodules.packer = packer = WritePacker(B, 4 * C)
        wiring.connect(m, packer.o_req, wiring.flipped(self.o_wreq))
        wiring.connect(m, packer.o_beat, wiring.flipped(self.o_wdata))
        # Destination of each row read from the accumulator, in read order: address, bytes
        # (precomputed: the read side does not shift) and whether it starts / ends a run of
        # the write packer.
        m.submodules.dest = dest = fifo.SyncFIFOBuffered(width=32 + 8 + 2, depth=8)
        # The whole STORE is contiguous in memory (one row, or rows of one n-tile back to
        # back) and its rows need no parameter reads in between: one write run.
        run = Signal()
        run_bytes = Signal(16)
        run_first = Signal()         # no row of the instruction has entered `dest` yet

        halted = Signal()
        err_code = Signal(ErrorCode)
        # pc only changes when an instruction is taken, never once halted, and every error
        # is the current instruction's (its writes are all answered before the next starts).
        m.d.comb += [self.error.valid.eq(halted), self.error.code.eq(err_code),
                     self.error.pc.eq(pc)]
        stop = self.halt | halted

        def fail(code):
            m.d.sync += [err_code.eq(code), halted.eq(1)]
            m.next = "HALT"

        # An error found before the token wait, reported once the token has arrived.
        held = Signal()
        held_code = Signal(ErrorCode)

        def hold(code, then="TOKEN"):
            m.d.sync += [held.eq(1), held_code.eq(code)]
            if then:
                m.next = then

        # Outstanding writes.
        outstanding = Signal(16)
        issued = self.o_wreq.valid & self.o_wreq.ready
        m.d.comb += self.i_wdone.ready.eq(1)
        done = self.i_wdone.valid
        outstanding_next = Signal(16)
        outstanding_nz = Signal()    # outstanding != 0, kept as a register
        m.d.comb += outstanding_next.eq(outstanding + issued - done)
        m.d.sync += [outstanding.eq(outstanding_next), outstanding_nz.eq(outstanding_next != 0)]
        with m.If(done & self.i_wdone.payload.error & ~halted):
            m.d.sync += [err_code.eq(ErrorCode.BUS_ERROR), halted.eq(1)]

        esize_shift = Mux(int8, 0, 2)
        m.submodules.checks = checks = StoreChecks(C, cfg.acc_rows, cfg.param_slots)
        check_start = Signal()
        m.d.comb += [checks.word.eq(word), checks.mem_limit.eq(self.mem_limit),
                     checks.start.eq(check_start)]
        nt = Signal(12)
        # nt == last n-tile, a cycle late: nt never changes in the cycle before it is compared
        # (a request, a TILE cycle or CHECK's result lies between).
        nt_last = Signal()
        m.d.sync += nt_last.eq(nt == checks.last_nt)
        param_tile = Signal(32)           # param_addr + nt * C * PARAM_RECORD_BYTES
        acc_tile = Signal(16)             # acc_addr + nt * acc_n_step
        width = Signal(range(C + 1))      # valid channels in this tile
        chunk_bytes = Signal(8)           # their bytes in a row
        rows_left = Signal(16)            # rows after this one in the tile
        row_last = Signal()               # rows_left == 0
        row_addr = Signal(32)
        tile_addr = Signal(32)
        acc_row = Signal(16)
        lane = Signal(range(C + 1))
        # PARAMS' lane compares, kept as registers (updated with lane): lane < width,
        # lane < C and lane == C - 1.
        lane_lt_width = Signal()
        lane_lt_c = Signal()
        lane_is_last = Signal()
        rec_full = Signal()          # PARAMS: rec_beats == per_record
        # The accumulator reader was idle in the cycle before. PARAMS issues no rows, so the
        # reader only drains there, and a row issued in ROWS makes it busy in the next cycle
        # (TILE), so this is ~reader.busy one cycle late and never early.
        rows_idle = Signal()
        m.d.sync += rows_idle.eq(~rows_busy)
        tile_params = C * PARAM_RECORD_BYTES
        rec = Signal(8 * PARAM_RECORD_BYTES)
        rec_beats = Signal(range(PARAM_RECORD_BYTES // min(B, 16) + 1))
        per_record = max(1, PARAM_RECORD_BYTES // B)
        cols_left = Signal(16)
        cols_w = Signal(range(C + 1))  # min(cols_left, C), set with cols_left
        # The record completed by the beat on i_rdata (with the beats before it).
        incoming = Signal(8 * PARAM_RECORD_BYTES)
        m.d.comb += incoming.eq(Cat(rec, self.i_rdata.payload.data)[8 * B:] if B < 16 else
                                self.i_rdata.payload.data[:128])
        in_shift = incoming[64:72].as_signed()
        rec_bad = Signal()           # PARAMS: rec is a complete record from the bus, shift bad
        last_beat = rec_beats == per_record - 1
        # VALIDATE's beat of the cycle before: valid, bus error, its record complete, shift bad.
        beat_valid = Signal()
        beat_error = Signal()
        beat_last = Signal()
        beat_bad = Signal()
        m.d.sync += beat_valid.eq(0)
        drained = Signal()           # DRAIN: the row path was idle in the cycle before
        m.d.sync += drained.eq(0)

        # On-chip records (multiplier, bias, shift): the parameter slots in rows [0, S), then
        # the temporary copy of a table that fits it.
        P, S = cfg.store_param_cache, cfg.param_slots
        cached = Signal()            # this instruction's table is in the copy or the slots
        v_left = Signal(16)          # records left in the current validation request
        v_one = Signal()             # v_left == 1
        w_index = Signal(range(max(S + P, 1)))
        r_index = Signal(range(max(S + P, 1)))
        r_next = Signal(range(max(S + P, 1) + 1))    # r_index + 1, set with r_index
        # Row of the instruction's first record in that memory.
        slot_base = Mux(keep | from_slots, ins.param_slot, S)
        advance = Signal()           # the requantizer takes a record from the copy
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

        # PARAMS' handshakes, from registers and outside the state machine (so that the
        # state's transitions and errors use them directly, not through the ports' muxes
        # over every state): a bus beat is wanted, a record is offered.
        p_read = Signal()
        p_valid = Signal()
        m.d.comb += [
            p_read.eq(~cached & lane_lt_width & ~rec_full),
            # The previous n-tile's rows must all be in the requantizer before its
            # parameters change (it only holds back rows already in its pipeline).
            p_valid.eq((cached | ~lane_lt_width | rec_full) & lane_lt_c & rows_idle),
        ]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.i_instr.ready.eq(~stop)
                # The instruction registers follow the offered word while idle (nothing reads
                # them here: the row path is empty, and `pc` is reported only once an
                # instruction waits or fails), so their ~300 enables are the state alone.
                m.d.sync += [word.eq(self.i_instr.payload.word),
                             int8.eq(STORE(self.i_instr.payload.word).mode == StoreMode.INT8),
                             int8_rows.eq(STORE(self.i_instr.payload.word).mode ==
                                          StoreMode.INT8),
                             pc.eq(self.i_instr.payload.pc), held.eq(0)]
                with m.If(self.i_instr.valid & ~stop):
                    m.next = "CHECK"
            with m.State("TOKEN"):
                hdr = ins.header
                with m.If(stop):
                    m.next = "HALT"
                with m.Elif(~hdr.pop_prev | self.prev_available):
                    m.d.comb += self.pop_prev.eq(hdr.pop_prev)
                    with m.If(held):
                        fail(held_code)
                    with m.Else():
                        m.next = "TILE"
            with m.State("CHECK"):
                # Pipelined (see StoreChecks); the code is the documented order's first.
                fits = keep | from_slots | (ins.cols <= P)
                # The instruction's starting values are loaded in every CHECK cycle (the word
                # is steady; `run`'s come from the checks' result, final when `done`), so
                # their enables are the state alone. A failing instruction never uses them.
                # A run needs no record reads between its rows: records from the copy or the
                # slots, or none (int32).
                m.d.sync += [run.eq(checks.contiguous & (~int8 | fits)),
                             run_bytes.eq(checks.run_bytes), run_first.eq(1)]
                m.d.sync += [nt.eq(0), param_tile.eq(ins.param_addr),
                             acc_tile.eq(ins.acc_addr), tile_addr.eq(ins.dram_addr),
                             cols_left.eq(ins.cols), cols_w.eq(Mux(ins.cols < C, ins.cols, C)),
                             lane.eq(0), rec_beats.eq(0),
                             cached.eq(int8 & fits),
                             w_index.eq(slot_base), r_index.eq(slot_base),
                             r_next.eq(slot_base + 1)]
                with m.If(checks.done & checks.fail):
                    hold(checks.code)
                with m.Elif(checks.done):
                    m.next = "VALIDATE_REQ"
            # Int8: read every parameter record once and check its shift before any row is
            # written, so a bad table stops the instruction with nothing written. A table that
            # fits the copy is one request; a wider one is one request per n-tile.
            with m.State("VALIDATE_REQ"):
                vw = cols_w
                count = Mux(cached, ins.cols, vw)
                with m.If(~int8 | from_slots):
                    m.next = "TOKEN"
                with m.Else():
                    m.d.comb += [self.o_rreq.valid.eq(~stop),
                                 self.o_rreq.payload.addr.eq(param_tile),
                                 self.o_rreq.payload.beats.eq(count * per_record)]
                    m.d.sync += [width.eq(vw), v_left.eq(count), v_one.eq(count == 1)]
                    with m.If(stop):
                        m.next = "HALT"
                    with m.Elif(self.o_rreq.ready):
                        m.next = "VALIDATE"
            with m.State("VALIDATE"):
                # Every beat requested is taken, even after an error (held until the token).
                # A record is assembled in rec as its beats arrive and judged a cycle later
                # from registers (beat_*), off the read data's path.
                m.d.comb += self.i_rdata.ready.eq(1)
                m.d.sync += [beat_valid.eq(self.i_rdata.valid),
                             beat_error.eq(self.i_rdata.payload.error), beat_last.eq(last_beat),
                             beat_bad.eq((in_shift < SHIFT_MIN) | (in_shift > SHIFT_MAX))]
                with m.If(self.i_rdata.valid):
                    m.d.sync += [rec.eq(incoming), rec_beats.eq(Mux(last_beat, 0, rec_beats + 1))]
                with m.If(beat_valid):
                    with m.If(beat_error & ~held):
                        hold(ErrorCode.BUS_ERROR, then=None)
                    with m.If(beat_last):
                        m.d.sync += [v_left.eq(v_left - 1), v_one.eq(v_left == 2),
                                     w_index.eq(w_index + 1)]
                        bad = beat_error | beat_bad
                        with m.If(~held & ~beat_error & beat_bad):
                            hold(ErrorCode.MALFORMED, then=None)
                        if S + P:
                            m.d.comb += cache_w.en.eq(cached & ~held & ~bad)
                        with m.If(v_one):
                            with m.If(held | bad | cached | nt_last):
                                m.d.sync += [nt.eq(0), param_tile.eq(ins.param_addr),
                                             cols_left.eq(ins.cols),
                                             cols_w.eq(Mux(ins.cols < C, ins.cols, C)),
                                             r_index.eq(slot_base), r_next.eq(slot_base + 1)]
                                m.next = "TOKEN"
                            with m.Else():
                                left = cols_left - width
                                m.d.sync += [nt.eq(nt + 1), param_tile.eq(param_tile + tile_params),
                                             cols_left.eq(left), cols_w.eq(Mux(left < C, left, C))]
                                m.next = "VALIDATE_REQ"
            with m.State("TILE"):
                w = cols_w
                m.d.sync += [width.eq(w), chunk_bytes.eq(w << esize_shift),
                             rows_left.eq(checks.last_row), row_last.eq(checks.last_row == 0),
                             row_addr.eq(tile_addr),
                             acc_row.eq(acc_tile), lane.eq(0),
                             lane_lt_width.eq(w != 0), lane_lt_c.eq(1), lane_is_last.eq(C == 1),
                             rec_beats.eq(0), rec_full.eq(0), rec_bad.eq(0)]
                with m.If(stop):
                    m.next = "HALT"
                with m.Elif(int8 & cached):
                    m.next = "PARAMS"
                with m.Elif(int8):
                    m.next = "PARAM_REQ"
                with m.Else():
                    m.next = "ROWS"
            with m.State("PARAM_REQ"):
                m.d.comb += [self.o_rreq.valid.eq(1),
                             self.o_rreq.payload.addr.eq(param_tile),
                             self.o_rreq.payload.beats.eq(width * per_record)]
                with m.If(self.o_rreq.ready):
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                # From the on-chip copy (one record per cycle) or from the bus.
                src = Mux(cached, cached_rec, rec[:72])
                shift = src[64:72].as_signed()
                m.d.comb += [
                    params.valid.eq(p_valid),
                    params.payload.multiplier.eq(Mux(lane_lt_width, src[0:32], 0)),
                    params.payload.bias.eq(Mux(lane_lt_width, src[32:64], 0)),
                    params.payload.shift.eq(Mux(lane_lt_width, shift, 0)),
                    params.payload.zero_point.eq(ins.zero_point),
                    params.payload.relu.eq(ins.relu),
                ]
                m.d.comb += self.i_rdata.ready.eq(p_read)
                with m.If(self.i_rdata.valid & p_read):
                    m.d.sync += [rec.eq(incoming), rec_beats.eq(rec_beats + 1),
                                 rec_full.eq(last_beat),
                                 rec_bad.eq(last_beat &
                                            ((in_shift < SHIFT_MIN) | (in_shift > SHIFT_MAX)))]
                    with m.If(self.i_rdata.payload.error):
                        fail(ErrorCode.BUS_ERROR)
                # Only records from the bus are checked here (the copy's were checked once).
                # (rec_bad implies a record from the bus, complete, for lane < width.)
                with m.If(rec_bad & rows_idle):
                    fail(ErrorCode.MALFORMED)
                with m.Elif(p_valid & params.ready):
                    m.d.sync += [lane.eq(lane + 1), rec_beats.eq(0), rec_full.eq(0),
                                 rec_bad.eq(0), lane_lt_width.eq(lane + 1 < width),
                                 lane_lt_c.eq(~lane_is_last), lane_is_last.eq(lane == C - 2)]
                    with m.If(lane_lt_width & cached):
                        m.d.comb += advance.eq(1)
                        m.d.sync += [r_index.eq(r_next), r_next.eq(r_next + 1)]
                    with m.If(lane_is_last):
                        m.next = "ROWS"
            with m.State("ROWS"):
                m.d.comb += [reader.i_addr.valid.eq(~stop & dest.w_rdy),
                             reader.i_addr.payload.addr.eq(acc_row),
                             reader.i_addr.payload.last.eq(row_last),
                             dest.w_en.eq(reader.i_addr.valid & reader.i_addr.ready),
                             dest.w_data.eq(Cat(row_addr, chunk_bytes, ~run | run_first,
                                                ~run | (nt_last & row_last)))]
                # The row counters move without looking at `stop` (a halt from another unit,
                # far away): once stopped, they are never read again.
                with m.If(dest.w_rdy & reader.i_addr.ready):
                    m.d.sync += [rows_left.eq(rows_left - 1), row_last.eq(rows_left == 1),
                                 run_first.eq(0), acc_row.eq(acc_row + 1),
                                 row_addr.eq(row_addr + ins.dram_stride)]
                    with m.If(row_last):
                        left = cols_left - width
                        m.d.sync += [nt.eq(nt + 1), cols_left.eq(left),
                                     cols_w.eq(Mux(left < C, left, C)),
                                     param_tile.eq(param_tile + tile_params),
                                     acc_tile.eq(acc_tile + ins.acc_n_step),
                                     tile_addr.eq(tile_addr + (C << esize_shift))]
                        with m.If(nt_last):
                            m.next = "DRAIN"
                        with m.Else():
                            m.next = "TILE"
                with m.If(stop):
                    m.next = "HALT"
            with m.State("DRAIN"):
                # Registered: nothing enters the row path in DRAIN, so idle last cycle is idle.
                m.d.sync += drained.eq(~rows_busy & (dest.level == 0) & ~dest.r_rdy &
                                       ~packer.busy & ~rq.busy & ~outstanding_nz & ~issued)
                with m.If(drained):
                    m.d.comb += self.push_prev.eq(ins.header.push_prev & ~stop)
                    m.next = "IDLE"
            with m.State("HALT"):
                # Parameter beats already requested must still be taken off the bus, and a
                # write run the rows in flight do not complete is finished unstrobed.
                m.d.comb += [self.i_rdata.ready.eq(1),
                             packer.flush.eq(~rows_busy & (dest.level == 0) & ~dest.r_rdy &
                                             ~rq.busy)]

        m.d.sync += check_start.eq(fsm.ongoing("IDLE") & self.i_instr.valid & ~stop)

        # Rows: int32 straight to the packer, int8 through the requantizer.
        m.d.comb += [rq_stage.i_stream.payload.data.eq(rows_o.payload.data),
                     rq_stage.i_stream.payload.last.eq(rows_o.payload.last)]
        m.d.comb += [rq_stage.i_stream.valid.eq(rows_o.valid & int8),
                     rows_o.ready.eq(Mux(int8, rq_stage.i_stream.ready, packer.i_chunk.ready &
                                         dest.r_rdy))]
        row_bytes = Mux(int8_rows, rq.o_stream.payload.data.as_value(), rows_o.payload.data)
        row_valid = Mux(int8, rq.o_stream.valid, rows_o.valid)
        m.d.comb += [packer.i_chunk.valid.eq(row_valid & dest.r_rdy),
                     packer.i_chunk.payload.data.eq(row_bytes),
                     packer.i_chunk.payload.addr.eq(dest.r_data[:32]),
                     packer.i_chunk.payload.nbytes.eq(dest.r_data[32:40]),
                     packer.i_chunk.payload.first.eq(dest.r_data[40]),
                     packer.i_chunk.payload.last.eq(dest.r_data[41]),
                     packer.i_chunk.payload.run_bytes.eq(
                         Mux(run, run_bytes, dest.r_data[32:40])),
                     rq.o_stream.ready.eq(packer.i_chunk.ready & dest.r_rdy & int8),
                     dest.r_en.eq(packer.i_chunk.valid & packer.i_chunk.ready)]

        # busy and waiting leave from flip-flops (the accelerator's deadlock and completion
        # checks). busy: an instruction is being executed (the state register), or the row
        # path or the writes were busy in the cycle before, or rows were issued then (ROWS):
        # the row path only becomes busy after a ROWS cycle, and stays busy from one stage
        # to the next, so this is never low while the unit's former busy was high (it may
        # stay high a cycle longer after an error).
        path_busy_q = Signal()
        m.d.sync += path_busy_q.eq(rows_busy | (dest.level != 0) | dest.r_rdy | packer.busy |
                                   outstanding_nz | rq.busy | fsm.ongoing("ROWS"))
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("HALT") | path_busy_q)
        # waiting: the former condition a cycle late (a token arriving is seen a cycle later;
        # the deadlock check needs several quiet cycles), and only while still in TOKEN.
        waiting_q = Signal()
        m.d.sync += waiting_q.eq(fsm.ongoing("TOKEN") & ins.header.pop_prev &
                                 ~self.prev_available & ~outstanding_nz & ~packer.busy &
                                 ~rows_busy & (dest.level == 0))
        m.d.comb += self.waiting.eq(waiting_q & fsm.ongoing("TOKEN"))
        m.d.comb += self.bus_busy.eq(packer.busy | outstanding_nz)
        return m

