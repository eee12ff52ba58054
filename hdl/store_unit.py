"""Store unit: executes STORE, writing accumulator rows to device memory (int32 or int8).

Per instruction: check the accumulator rows, the destination bytes and (int8 mode) the
parameter table; wait for a compute->store token if ``pop_prev``; then, one n-tile of C
channels at a time, (int8) load the tile's parameter records into the requantizer, read the
tile's accumulator rows and send each row's valid channels, as int32 or requantized int8, to
the write packer, which writes exactly those bytes. After every write of the instruction is
acknowledged, a store->compute token is pushed if ``push_prev``.

This module is the controller (the state machine, the tile and row counters, the errors). The
rows travel through ``octet.hdl.store_row_path``; the records are kept by
``octet.hdl.store_params``. In int8 mode every record is read once before any row is written
and a shift outside [-31, 30] stops the instruction with MALFORMED. A table of at most
``store_param_cache`` records is read in one request and kept on chip (every record crosses
the bus once); a wider one is checked the same way, then read again one n-tile at a time.
``param_src`` KEEP also writes the table into the persistent parameter slots, and SLOTS loads
the requantizer from them with no bus read at all.

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

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import LAYOUTS, PARAM_RECORD_BYTES, ErrorCode, Opcode, ParamSource, StoreMode

from .store_checks import StoreChecks
from .store_params import StoreParams
from .store_row_path import StoreRowPath
from .unit_ports import BusRequest, ErrorReport, InstructionStream, MemRead

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

        m.submodules.row_path = rows = StoreRowPath(C, B, cfg.acc_rows)
        wiring.connect(m, rows.acc_r, wiring.flipped(self.acc_r))
        wiring.connect(m, rows.o_wreq, wiring.flipped(self.o_wreq))
        wiring.connect(m, rows.o_wdata, wiring.flipped(self.o_wdata))
        wiring.connect(m, wiring.flipped(self.i_wdone), rows.i_wdone)
        P, S = cfg.store_param_cache, cfg.param_slots
        m.submodules.params = prm = StoreParams(C, B, S, P)
        wiring.connect(m, prm.o_params, rows.i_params)

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

        with m.If(rows.write_error & ~halted):
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
        tile_params = C * PARAM_RECORD_BYTES
        per_record = max(1, PARAM_RECORD_BYTES // B)
        cols_left = Signal(16)
        cols_w = Signal(range(C + 1))  # min(cols_left, C), set with cols_left
        v_left = Signal(16)          # records left in the current validation request
        v_one = Signal()             # v_left == 1
        drained = Signal()           # DRAIN: the row path was idle in the cycle before
        m.d.sync += drained.eq(0)
        rows_idle = rows.rows_idle
        cached = prm.cached
        # The values the row path and the records take when the FSM strobes them.
        fits = keep | from_slots | (ins.cols <= P)   # the table is in the copy or the slots
        m.d.comb += [
            rows.stop.eq(stop), rows.int8.eq(int8), rows.int8_rows.eq(int8_rows),
            # A run needs no record reads between its rows: records from the copy or the
            # slots, or none (int32).
            rows.run.eq(checks.contiguous & (~int8 | fits)), rows.run_bytes.eq(checks.run_bytes),
            prm.cache_table.eq(int8 & fits), prm.held.eq(held),
            prm.slot_base.eq(Mux(keep | from_slots, ins.param_slot, S)),
            prm.tile_width.eq(cols_w), prm.width.eq(width), prm.rows_idle.eq(rows_idle),
            prm.zero_point.eq(ins.zero_point), prm.relu.eq(ins.relu),
            prm.bus_valid.eq(self.i_rdata.valid), prm.bus_error.eq(self.i_rdata.payload.error),
            prm.bus_data.eq(self.i_rdata.payload.data),
        ]
        # The row's fields come straight from their registers, whatever the state (only
        # ``valid`` is decoded from it): the accumulator's read address goes from ``acc_row``
        # to the block RAMs' address pins with no state or halt logic on the way.
        m.d.comb += [rows.i_row.payload.acc_addr.eq(acc_row),
                     rows.i_row.payload.tile_last.eq(row_last),
                     rows.i_row.payload.addr.eq(row_addr),
                     rows.i_row.payload.nbytes.eq(chunk_bytes),
                     rows.i_row.payload.run_last.eq(nt_last & row_last)]

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
                # The instruction's starting values are loaded in every CHECK cycle (the word
                # is steady; the run's come from the checks' result, final when `done`), so
                # their enables are the state alone. A failing instruction never uses them.
                m.d.comb += [rows.run_load.eq(1), prm.start.eq(1)]
                m.d.sync += [nt.eq(0), param_tile.eq(ins.param_addr),
                             acc_tile.eq(ins.acc_addr), tile_addr.eq(ins.dram_addr),
                             cols_left.eq(ins.cols), cols_w.eq(Mux(ins.cols < C, ins.cols, C))]
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
                # A record is assembled as its beats arrive and judged a cycle later from
                # registers (beat_*), off the read data's path.
                m.d.comb += [self.i_rdata.ready.eq(1), prm.validate.eq(1)]
                with m.If(prm.beat_valid):
                    with m.If(prm.beat_error & ~held):
                        hold(ErrorCode.BUS_ERROR, then=None)
                    with m.If(prm.beat_last):
                        m.d.sync += [v_left.eq(v_left - 1), v_one.eq(v_left == 2)]
                        bad = prm.beat_error | prm.beat_bad
                        with m.If(~held & ~prm.beat_error & prm.beat_bad):
                            hold(ErrorCode.MALFORMED, then=None)
                        with m.If(v_one):
                            with m.If(held | bad | cached | nt_last):
                                m.d.comb += prm.rewind.eq(1)
                                m.d.sync += [nt.eq(0), param_tile.eq(ins.param_addr),
                                             cols_left.eq(ins.cols),
                                             cols_w.eq(Mux(ins.cols < C, ins.cols, C))]
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
                             row_addr.eq(tile_addr), acc_row.eq(acc_tile)]
                m.d.comb += prm.tile.eq(1)
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
                m.d.comb += [prm.load.eq(1), self.i_rdata.ready.eq(prm.p_read)]
                with m.If(self.i_rdata.valid & prm.p_read):
                    with m.If(self.i_rdata.payload.error):
                        fail(ErrorCode.BUS_ERROR)
                # Only records from the bus are checked here (the copy's were checked once).
                with m.If(prm.rec_bad & rows_idle):
                    fail(ErrorCode.MALFORMED)
                with m.Elif(prm.p_valid & rows.i_params.ready):
                    with m.If(prm.lane_is_last):
                        m.next = "ROWS"
            with m.State("ROWS"):
                m.d.comb += rows.i_row.valid.eq(1)
                # The row counters move without looking at `stop` (a halt from another unit,
                # far away): once stopped, they are never read again.
                with m.If(rows.i_row.ready):
                    m.d.sync += [rows_left.eq(rows_left - 1), row_last.eq(rows_left == 1),
                                 acc_row.eq(acc_row + 1),
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
                m.d.sync += drained.eq(rows.idle)
                with m.If(drained):
                    m.d.comb += self.push_prev.eq(ins.header.push_prev & ~stop)
                    m.next = "IDLE"
            with m.State("HALT"):
                # Parameter beats already requested must still be taken off the bus, and a
                # write run the rows in flight do not complete is finished unstrobed.
                m.d.comb += [self.i_rdata.ready.eq(1), rows.flush.eq(1)]

        m.d.sync += check_start.eq(fsm.ongoing("IDLE") & self.i_instr.valid & ~stop)

        # busy and waiting leave from flip-flops (the accelerator's deadlock and completion
        # checks). busy: an instruction is being executed (the state register), or the row
        # path or the writes were busy in the cycle before, or rows were issued then (ROWS):
        # the row path only becomes busy after a ROWS cycle, and stays busy from one stage
        # to the next, so this is never low while the unit's former busy was high (it may
        # stay high a cycle longer after an error).
        path_busy_q = Signal()
        m.d.sync += path_busy_q.eq(rows.busy | fsm.ongoing("ROWS"))
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("HALT") | path_busy_q)
        # waiting: the former condition a cycle late (a token arriving is seen a cycle later;
        # the deadlock check needs several quiet cycles), and only while still in TOKEN.
        waiting_q = Signal()
        m.d.sync += waiting_q.eq(fsm.ongoing("TOKEN") & ins.header.pop_prev &
                                 ~self.prev_available & rows.quiet)
        m.d.comb += self.waiting.eq(waiting_q & fsm.ongoing("TOKEN"))
        m.d.comb += self.bus_busy.eq(rows.bus_busy)
        return m
