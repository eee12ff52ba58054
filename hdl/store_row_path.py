"""The store unit's row path: accumulator rows to device-memory writes.

The store unit's controller (``octet.hdl.store_unit``) issues one accumulator row at a time
with its destination. The row is read from the accumulator (:class:`SpadReader`), passes a
register stage, and goes either straight (int32) or through the requantizer (int8) and a skid
stage to the write packer, which writes exactly the row's valid bytes. A FIFO (``dest``)
holds each issued row's destination until the row reaches the packer. The path also keeps
the instruction's *write run* (all its rows in one bus request, when they are contiguous) and
counts the writes awaiting their response.

Tested through the store unit by the accelerator tests (``tests/test_accelerator_rtl.py``);
its blocks have unit tests of their own (requantizer, write packer).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .flagged_queue import FlaggedQueue
from .layouts import requant_param_layout
from .requantizer import Requantizer
from .skid_buffer import SkidBuffer
from .spad_reader import SpadReader
from .unit_ports import BusRequest, MemRead
from .write_packer import WritePacker

__all__ = ["StoreRowPath"]


class StoreRowPath(wiring.Component):
    """Accumulator reader -> (requantizer) -> write packer, with the rows' destinations.

    Parameters
    ----------
    cols : int
        Channels per accumulator row (C).
    bus_bytes : int
        Bytes per bus beat (B).
    acc_rows : int
        Accumulator depth.

    Ports
    -----
    acc_r : Out(MemRead(32C, acc_rows))
    i_params : In(stream.Signature(requant_param_layout()))
        Parameter records for the requantizer, one channel per transfer.
    i_row : In(stream {acc_addr, tile_last, addr, nbytes, run_last})
        A row to write: accumulator row, whether it is its tile's last (the reader's
        ``last``), destination address and bytes, whether it ends the instruction's run.
        ``ready`` does not depend on ``valid``; while ``stop`` is high a transfer drops the row
        (the unit is halting and reads nothing after).
    stop : In(1)
    int8, int8_rows : In(1)
        The instruction's mode (two copies: control, and the row data mux).
    run_load : In(1)
        Take ``run`` and ``run_bytes`` for the next instruction (whose first row starts the
        run).
    run : In(1), run_bytes : In(16)
        The instruction is one write run of ``run_bytes`` bytes.
    flush : In(1)
        Halting: finish an open write run unstrobed once no row is left in the path.
    o_wreq : Out(BusRequest()), o_wdata : Out(stream {data, strb}), i_wdone : In(stream {error})
        Writes; one ``i_wdone`` per request.
    write_error : Out(1)
        A write response reports a bus error.
    rows_busy : Out(1)
        A row is in the reader or its register stages.
    rows_idle : Out(1)
        ``~rows_busy`` in the cycle before.
    idle : Out(1)
        Nothing in the path, no write outstanding or being requested.
    quiet : Out(1)
        No row in the reader, ``dest`` or the packer, no write outstanding.
    busy : Out(1)
        Something in the path, or a write outstanding.
    bus_busy : Out(1)
        A write is being packed or awaits its response.
    """

    def __init__(self, cols, bus_bytes, acc_rows):
        self._cols, self._bus_bytes, self._acc_rows = cols, bus_bytes, acc_rows
        C, B = cols, bus_bytes
        super().__init__({
            "acc_r": Out(MemRead(32 * C, acc_rows)),
            "i_params": In(stream.Signature(requant_param_layout())),
            "i_row": In(stream.Signature(data.StructLayout({
                "acc_addr": range(acc_rows), "tile_last": 1, "addr": 32, "nbytes": 8,
                "run_last": 1}))),
            "stop": In(1), "int8": In(1), "int8_rows": In(1),
            "run_load": In(1), "run": In(1), "run_bytes": In(16), "flush": In(1),
            "o_wreq": Out(BusRequest()),
            "o_wdata": Out(stream.Signature(data.StructLayout({"data": 8 * B, "strb": B}))),
            "i_wdone": In(stream.Signature(data.StructLayout({"error": 1}))),
            "write_error": Out(1), "rows_busy": Out(1), "rows_idle": Out(1), "idle": Out(1),
            "quiet": Out(1), "busy": Out(1), "bus_busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C, B = self._cols, self._bus_bytes
        int8, int8_rows = self.int8, self.int8_rows

        m.submodules.requant = rq = Requantizer(C)
        # The controller offers records on `i_params`; a register stage passes them to the
        # requantizer, so the record (a block RAM read) and the controller's handshake logic
        # end there instead of running on into the requantizer's row handshake and the
        # accumulator reader.
        params = self.i_params
        params_held = Signal()
        m.d.comb += [params.ready.eq(~params_held | rq.p_stream.ready),
                     rq.p_stream.valid.eq(params_held)]
        # The register follows the offer whenever it may be overwritten (the requantizer reads
        # it only while `params_held`), so its enable is two flip-flops, not the controller's
        # `valid` (the fifteenth timing round's seed-1 worst path: from the controller's state
        # through `valid` to these ~100 enables).
        with m.If(params.ready):
            m.d.sync += rq.p_stream.payload.eq(params.payload)
        with m.If(params.valid & params.ready):
            m.d.sync += params_held.eq(1)
        with m.Elif(rq.p_stream.ready):
            m.d.sync += params_held.eq(0)
        m.submodules.acc_reader = reader = SpadReader(32 * C, self._acc_rows)
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
        m.d.comb += self.rows_busy.eq(rows_busy)
        # The reader was idle in the cycle before: the controller issues no rows while it
        # loads parameters, so there this is ~reader.busy one cycle late and never early.
        m.d.sync += self.rows_idle.eq(~rows_busy)
        m.submodules.packer = packer = WritePacker(B, 4 * C)
        wiring.connect(m, packer.o_req, wiring.flipped(self.o_wreq))
        # The beats leave through a skid stage of their own, so the packer's beat handshake
        # (its fill level and buffer shift) starts from a register beside it, not from the
        # accelerator's write stage. packing: the packer or that stage holds bytes.
        m.submodules.beat_stage = beat_stage = SkidBuffer(packer.o_beat.payload.shape())
        wiring.connect(m, packer.o_beat, beat_stage.i_stream)
        wiring.connect(m, beat_stage.o_stream, wiring.flipped(self.o_wdata))
        # Chunks enter the packer through a skid stage: the int8 / int32 row multiplexer
        # (its select fans out to every data bit, its inputs come from the requantizer's
        # lanes and the row stage) ends in a register here, and the packer's byte masking
        # and insertion start from the stage's registers.
        # (Five copies of its output valid flag enable its ~310 output flip-flops.)
        m.submodules.chunk_stage = chunk_stage = SkidBuffer(packer.i_chunk.payload.shape(),
                                                            enable_groups=5)
        wiring.connect(m, chunk_stage.o_stream, packer.i_chunk)
        chunk_in = chunk_stage.i_stream
        packing = packer.busy | beat_stage.busy | chunk_stage.busy
        # Destination of each row read from the accumulator, in read order: address, bytes
        # (precomputed: the read side does not shift) and whether it starts / ends a run of
        # the write packer.
        # It is read straight from LUT RAM with its status in flip-flops, so taking a row
        # (which waits for the requantizer's output and the chunk stage) moves a pointer
        # instead of enabling a 42-bit output register.
        m.submodules.dest = dest = FlaggedQueue(32 + 8 + 2, 8, flag_bits=1)
        # The whole STORE is contiguous in memory (one row, or rows of one n-tile back to
        # back) and its rows need no parameter reads in between: one write run.
        run = Signal()
        run_bytes = Signal(16)
        run_first = Signal()         # no row of the instruction has entered `dest` yet

        # Outstanding writes.
        outstanding = Signal(16)
        issued = self.o_wreq.valid & self.o_wreq.ready
        m.d.comb += self.i_wdone.ready.eq(1)
        done = self.i_wdone.valid
        outstanding_next = Signal(16)
        outstanding_nz = Signal()    # outstanding != 0, kept as a register
        m.d.comb += outstanding_next.eq(outstanding + issued - done)
        m.d.sync += [outstanding.eq(outstanding_next), outstanding_nz.eq(outstanding_next != 0)]
        m.d.comb += self.write_error.eq(done & self.i_wdone.payload.error)

        # Rows issued: the reader takes the address, `dest` the destination.
        row = self.i_row.payload
        m.d.comb += [reader.i_addr.valid.eq(self.i_row.valid & ~self.stop & dest.w_rdy),
                     reader.i_addr.payload.addr.eq(row.acc_addr),
                     reader.i_addr.payload.last.eq(row.tile_last),
                     self.i_row.ready.eq(dest.w_rdy & reader.i_addr.ready),
                     dest.w_en.eq(reader.i_addr.valid & reader.i_addr.ready),
                     dest.w_data.eq(Cat(row.addr, row.nbytes, ~run | run_first,
                                        ~run | row.run_last))]
        with m.If(self.run_load):
            m.d.sync += [run.eq(self.run), run_bytes.eq(self.run_bytes), run_first.eq(1)]
        with m.Elif(self.i_row.valid & self.i_row.ready):
            m.d.sync += run_first.eq(0)

        # Rows: int32 straight to the packer, int8 through the requantizer.
        m.d.comb += [rq_stage.i_stream.payload.data.eq(rows_o.payload.data),
                     rq_stage.i_stream.payload.last.eq(rows_o.payload.last)]
        m.d.comb += [rq_stage.i_stream.valid.eq(rows_o.valid & int8),
                     rows_o.ready.eq(Mux(int8, rq_stage.i_stream.ready, chunk_in.ready &
                                         dest.r_rdy))]
        row_bytes = Mux(int8_rows, rq.o_stream.payload.data.as_value(), rows_o.payload.data)
        row_valid = Mux(int8, rq.o_stream.valid, rows_o.valid)
        m.d.comb += [chunk_in.valid.eq(row_valid & dest.r_rdy),
                     chunk_in.payload.data.eq(row_bytes),
                     chunk_in.payload.addr.eq(dest.r_data[:32]),
                     chunk_in.payload.nbytes.eq(dest.r_data[32:40]),
                     chunk_in.payload.first.eq(dest.r_data[40]),
                     chunk_in.payload.last.eq(dest.r_data[41]),
                     chunk_in.payload.run_bytes.eq(
                         Mux(run, run_bytes, dest.r_data[32:40])),
                     rq.o_stream.ready.eq(chunk_in.ready & dest.r_rdy & int8),
                     dest.r_en.eq(chunk_in.valid & chunk_in.ready)]

        # A run the rows in flight do not complete is finished unstrobed once they are out.
        m.d.comb += packer.flush.eq(self.flush & (~rows_busy & (dest.level == 0) &
                                                  ~dest.r_rdy & ~rq.busy & ~chunk_stage.busy))
        m.d.comb += [
            self.idle.eq(~rows_busy & (dest.level == 0) & ~dest.r_rdy & ~packing &
                         ~rq.busy & ~outstanding_nz & ~issued),
            self.busy.eq(rows_busy | (dest.level != 0) | dest.r_rdy | packing |
                         outstanding_nz | rq.busy),
            self.quiet.eq(~outstanding_nz & ~packing & ~rows_busy & (dest.level == 0)),
            self.bus_busy.eq(packing | outstanding_nz),
        ]
        return m
