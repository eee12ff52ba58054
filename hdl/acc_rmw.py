"""Accumulator read-modify-write: the compute unit's result rows into the accumulator.

Each row the array produces is written to its accumulator row, or added to it (``acc``).
A row may come every cycle, and the same accumulator row may come back a few cycles later (a
GEMM of few rows adds every k-tile into the same rows), so the pipeline forwards sums that
have not reached the memory yet.

Stage 0: the row's address goes to the read port (which reads every cycle). Stage 1: the row
as read arrives and is registered. Stage 2: add. Stage 3: write (the sum, address and enable
pass a register, so the block RAMs' write pins, spread over the chip, are driven by
flip-flops). The read port is **not** transparent: a read misses the writes of its own cycle
and of the two before it reach the RAM, those of the rows one, two and three cycles ahead.
Their sums are forwarded instead, the latest one winning: stage 1 picks it into a register
(``s2_fwd``: the sum being computed, or one of the last two cycles'), and stage 2 adds it or
the row as read, so the memory's data goes straight into a register and one gate level sits
before the adder. So a read made in the cycle another write reaches the same row is never
used (on the board that collision returns undefined data, ``docs/fpga.md``).

The write enable is decided in stage 2: a row in stage 2 while ``stop`` is high is not
written. The tokens a row carries (``push_prev``, ``push_next``) are pushed with its write,
so a unit that reads the rows after taking the token sees them written.

Tested by ``tests/test_acc_rmw.py`` (Amaranth simulator: every reuse distance, random gaps,
against a Python model of the accumulator) and through the accelerator tests.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .unit_ports import MemRead, MemWrite

__all__ = ["AccumulatorRmw", "rmw_row_layout"]


def rmw_row_layout(cols, acc_rows):
    """A result row: its accumulator ``addr``, ``data`` (``cols`` int32), ``acc`` (add into
    the row rather than overwrite it) and the tokens to push once it is written."""
    return data.StructLayout({"addr": range(acc_rows), "data": 32 * cols, "acc": 1,
                              "push_prev": 1, "push_next": 1})


class AccumulatorRmw(wiring.Component):
    """Read-modify-write of accumulator rows, one per cycle.

    Parameters
    ----------
    cols : int
        int32 values per row.
    acc_rows : int
        Accumulator depth.

    Ports
    -----
    i_row : In(stream.Signature(rmw_row_layout(cols, acc_rows), always_ready=True))
        A row per cycle at most; ``payload.addr`` is read every cycle, valid or not.
    stop : In(1)
        The unit stops: a row in stage 2 now is not written.
    acc_r : Out(MemRead(32 * cols, acc_rows))
        A read port that is not transparent to ``acc_w``, with one cycle of latency.
    acc_w : Out(MemWrite(32 * cols, acc_rows))
        Driven from registers.
    push_prev, push_next : Out(1)
        A row carrying that token is written in this cycle.
    busy : Out(1)
        A row is in the pipeline.
    """

    def __init__(self, cols, acc_rows):
        for what, value in (("Column count", cols), ("Accumulator depth", acc_rows)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"{what} must be a positive integer, not {value!r}")
        self._cols, self._rows = cols, acc_rows
        super().__init__({
            "i_row": In(stream.Signature(rmw_row_layout(cols, acc_rows), always_ready=True)),
            "stop": In(1),
            "acc_r": Out(MemRead(32 * cols, acc_rows)),
            "acc_w": Out(MemWrite(32 * cols, acc_rows)),
            "push_prev": Out(1), "push_next": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C = self._cols
        row = self.i_row.payload
        take = self.i_row.valid

        s1 = {"valid": Signal(name="s1_valid"), "acc": Signal(name="s1_acc"),
              "addr": Signal.like(row.addr, name="s1_addr"),
              "data": Signal(32 * C, name="s1_data"),
              "push_prev": Signal(name="s1_push_prev"), "push_next": Signal(name="s1_push_next")}
        s2 = {key: Signal.like(sig, name=f"s2_{key}") for key, sig in s1.items() if key != "acc"}
        s3_valid = Signal()     # a row in stage 3 (written now unless it was stopped)
        s3_addr = Signal.like(row.addr)
        s1_forward = Signal()   # the row one step ahead (in stage 2 now) has s1's address
        s1_forward2 = Signal()  # the row two steps ahead (in stage 3 now) has it
        s1_forward3 = Signal()  # the row three steps ahead (written as s1 was read) has it
        s2_read = Signal(32 * C)     # the accumulator row as read
        s2_prev = Signal(32 * C)     # the sum computed in the last cycle
        s2_prev2 = Signal(32 * C)    # the sum computed in the cycle before
        s2_fwd = Signal(32 * C)      # the sum forwarded to stage 2
        s2_add_read = Signal()       # accumulate onto s2_read
        s2_add_fwd = Signal()        # accumulate onto s2_fwd (forwarded)

        # The read port is always enabled (its data is only used in the cycle after a row is
        # taken), so the row handshake does not fan out to its capture flip-flops.
        m.d.comb += [self.acc_r.addr.eq(row.addr), self.acc_r.en.eq(1)]
        m.d.sync += [s1["valid"].eq(take), s1["addr"].eq(row.addr), s1["acc"].eq(row.acc),
                     s1["data"].eq(row.data),
                     s1["push_prev"].eq(take & row.push_prev),
                     s1["push_next"].eq(take & row.push_next),
                     s1_forward.eq(s1["valid"] & (s1["addr"] == row.addr)),
                     s1_forward2.eq(s2["valid"] & (s2["addr"] == row.addr)),
                     s1_forward3.eq(s3_valid & (s3_addr == row.addr))]
        m.d.sync += [s2[key].eq(s1[key]) for key in s2]
        forwarded = s1_forward | s1_forward2 | s1_forward3
        m.d.sync += [s2_read.eq(self.acc_r.data), s2_add_read.eq(s1["acc"] & ~forwarded),
                     s2_add_fwd.eq(s1["acc"] & forwarded)]

        total = []
        for j in range(C):
            col = slice(32 * j, 32 * j + 32)
            # One gate level per bit in front of the adder: at most one of the two is set.
            old = (Mux(s2_add_read, s2_read[col], 0) | Mux(s2_add_fwd, s2_fwd[col], 0))
            total.append((old + s2["data"][col])[:32])
        total = Cat(*total)
        m.d.sync += [s2_prev.eq(total), s2_prev2.eq(s2_prev),
                     s2_fwd.eq(Mux(s1_forward, total, Mux(s1_forward2, s2_prev, s2_prev2)))]

        s3_data = Signal(32 * C)
        s3_en = Signal()
        s3_push_prev, s3_push_next = Signal(), Signal()
        m.d.sync += [s3_valid.eq(s2["valid"]), s3_addr.eq(s2["addr"]), s3_data.eq(total),
                     s3_en.eq(s2["valid"] & ~self.stop),
                     s3_push_prev.eq(s2["push_prev"] & s2["valid"]),
                     s3_push_next.eq(s2["push_next"] & s2["valid"])]
        m.d.comb += [self.acc_w.addr.eq(s3_addr), self.acc_w.data.eq(s3_data),
                     self.acc_w.en.eq(s3_en),
                     self.push_prev.eq(s3_push_prev), self.push_next.eq(s3_push_next),
                     self.busy.eq(s1["valid"] | s2["valid"] | s3_valid)]
        return m
