"""Weight-stationary R x C int8 systolic array with double-buffered weight tiles.

Dataflow (as Gemmini's weight-stationary mode): PE (i, j) holds W[k0 + i, n0 + j]. Activation
vector m (A[m, k0:k0+R]) enters row i skewed by i cycles and moves right; partial sums move
down, so column j produces ``sum_i A[m, i] * W[i, j]`` and the outputs are deskewed into one
row per cycle. A weight tile is loaded into the idle bank while the other bank computes; the
``last`` flag of an activation closes its tile and flips the bank, so consecutive tiles follow
each other without bubbles. Results leave through a credit-managed queue: the array itself
never stalls (see :mod:`octet.hdl.interleaved_queue`).

Tested by ``tests/test_systolic_array.py`` (Amaranth simulator) and
``tests/test_array_rtl.py`` (cocotb + Verilator against ``octet.sim.golden.matmul_int32``).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from octet.numerics import ACC_BITS, OPERAND_BITS

from .interleaved_queue import QUEUE_SLACK, InterleavedResultQueue
from .layouts import accumulator_layout, activation_layout, weight_row_layout
from .pe import ProcessingElement

__all__ = ["SystolicArray", "psum_bits_for"]

MAX_DIM = 64


def psum_bits_for(rows):
    """Partial-sum width that cannot overflow for ``rows`` products of int8 x int8.

    Each product lies in [-16256, 16384]; ``rows`` of them need 16 + ceil(log2(rows)) bits.
    """
    return 2 * OPERAND_BITS + (rows - 1).bit_length()


class SystolicArray(wiring.Component):
    """R x C weight-stationary systolic array.

    Parameters
    ----------
    rows : int
        R, the reduction (K) depth of one tile, 1 to 64.
    cols : int
        C, the output (N) width of one tile, 1 to 64.

    Ports
    -----
    w_stream : In(stream.Signature(weight_row_layout(cols)))
        Weight tiles, R beats each, row 0 first. Loading waits while the target bank is
        still in use by activations in flight.
    a_stream : In(stream.Signature(activation_layout(rows)))
        Activation vectors for the oldest loaded tile; ``last`` marks the tile's final one.
    o_stream : Out(stream.Signature(accumulator_layout(cols)))
        One int32 result row per activation vector, in order, ``last`` copied through.
    computing : Out(1)
        High in the cycle after each cycle an activation vector enters the array (for
        performance counters).
    busy : Out(1)
        A weight tile is loaded or loading, or results are in flight or queued.

    Attributes
    ----------
    latency : int
        Cycles from an activation's acceptance to its result entering the output queue.
    """

    def __init__(self, rows=8, cols=8):
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"Array {name} must be a positive integer, not {value!r}")
            if value > MAX_DIM:
                raise ValueError(f"Array {name} must be at most {MAX_DIM}, not {value}")
        self._rows = rows
        self._cols = cols
        super().__init__({
            "w_stream": In(stream.Signature(weight_row_layout(cols))),
            "a_stream": In(stream.Signature(activation_layout(rows))),
            "o_stream": Out(stream.Signature(accumulator_layout(cols))),
            "computing": Out(1),
            "busy": Out(1),
        })

    @property
    def rows(self):
        return self._rows

    @property
    def cols(self):
        return self._cols

    @property
    def latency(self):
        return self._rows + self._cols + 1

    def elaborate(self, platform):
        m = Module()
        R, C = self._rows, self._cols
        psum_bits = psum_bits_for(R)

        m.submodules.queue = queue = InterleavedResultQueue(accumulator_layout(C),
                                                            depth=self.latency + QUEUE_SLACK)
        wiring.connect(m, wiring.flipped(self.o_stream), queue.o_stream)

        # Bank bookkeeping: `full` = loaded and not yet closed by a `last` activation;
        # `drain` counts down after the bank's last activation entered. An activation accepted
        # in cycle t reads PE (i, j)'s weight in cycle t + 1 + i + j, so row k may be
        # rewritten from cycle t + C + k on. Rows are loaded in order, one per cycle at most,
        # so it suffices that row 0 waits until cycle t + C: a countdown from C - 1.
        full = Signal(2)
        drain = [Signal(range(C + 1), name=f"drain{b}") for b in range(2)]
        load_bank = Signal()
        load_row = Signal(range(R))
        cur_bank = Signal()

        # drain == 0 per bank, kept as a register beside the count, so the weight stream's
        # ready (the clock enable of the row registers in front of the array) comes from
        # flip-flops through one LUT.
        drained = [Signal(init=1, name=f"drained{b}") for b in range(2)]
        load_free = Signal()
        m.d.comb += load_free.eq(~full.bit_select(load_bank, 1) &
                                 Mux(load_bank, drained[1], drained[0]))
        m.d.comb += self.w_stream.ready.eq(load_free)
        w_accept = self.w_stream.valid & self.w_stream.ready

        m.d.comb += self.a_stream.ready.eq(full.bit_select(cur_bank, 1) & queue.credit)
        a_accept = self.a_stream.valid & self.a_stream.ready
        m.d.comb += queue.admit.eq(a_accept)
        m.d.sync += self.computing.eq(a_accept)  # registered: it feeds a counter elsewhere

        with m.If(w_accept):
            with m.If(load_row == R - 1):
                m.d.sync += [load_row.eq(0), load_bank.eq(~load_bank)]
            with m.Else():
                m.d.sync += load_row.eq(load_row + 1)

        set_full = Signal(2)
        clear_full = Signal(2)
        with m.If(w_accept & (load_row == R - 1)):
            m.d.comb += set_full.bit_select(load_bank, 1).eq(1)
        with m.If(a_accept & self.a_stream.payload.last):
            m.d.comb += clear_full.bit_select(cur_bank, 1).eq(1)
            m.d.sync += cur_bank.eq(~cur_bank)
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        for b in range(2):
            with m.If(a_accept & (cur_bank == b)):
                m.d.sync += [drain[b].eq(C - 1), drained[b].eq(C == 1)]
            with m.Elif(drain[b] != 0):
                m.d.sync += [drain[b].eq(drain[b] - 1), drained[b].eq(drain[b] == 1)]

        # Weight rows reach the PEs through registers at the array's edge, so that neither the
        # handshake nor the stream's payload fans out to every PE. Stage 1 holds the accepted
        # row, its one-hot row enable and its bank; stage 2 holds, per column, w, 3w and -w
        # (computed once here instead of in every PE) and, per row and bank, one write enable
        # that is the PEs' clock enable as is. With k stages, a row accepted in cycle a is
        # visible in the PEs from cycle a + k + 1. A tile's first activation is accepted at
        # the earliest one cycle after its last row (accepted in cycle s), and reads row i
        # from cycle s + 2 + i on; row i was accepted by cycle s - (R - 1 - i), so it is
        # there in time while k <= R. An R = 1 array therefore skips stage 1. Writing later is
        # always safe for the drain rule above: it only allows a row to be overwritten later.
        if R >= 2:
            w_row = Signal(weight_row_layout(C))
            w_we = Signal(R)
            w_bank = Signal()
            m.d.sync += [w_row.eq(self.w_stream.payload), w_bank.eq(load_bank)]
            for i in range(R):
                m.d.sync += w_we[i].eq(w_accept & (load_row == i))
        else:
            w_row, w_we, w_bank = self.w_stream.payload, w_accept, load_bank
        w_col = [Signal(signed(OPERAND_BITS), name=f"w_col{j}") for j in range(C)]
        w3_col = [Signal(signed(OPERAND_BITS + 2), name=f"w3_col{j}") for j in range(C)]
        wneg_col = [Signal(signed(OPERAND_BITS + 1), name=f"wneg_col{j}") for j in range(C)]
        for j in range(C):
            m.d.sync += [w_col[j].eq(w_row[j]),
                         w3_col[j].eq(w_row[j] + (w_row[j] << 1)),
                         wneg_col[j].eq(-w_row[j])]
        # Enable registers per row and bank, the clock enable of the bank's 27 flip-flops in
        # each of the row's PEs: one for the left half of the columns and a reset-less copy
        # for the right half. (Yosys merges identical flip-flops, ignoring `keep` on wires,
        # but not a reset-less one with one that resets. After a reset the copy holds its
        # value of the cycle before for one cycle, which can only rewrite a weight bank that
        # no tile uses: the reset empties both.)
        we = [[Signal(name=f"we{b}_{i}") for i in range(R)] for b in range(2)]
        we_right = [[Signal(name=f"we{b}_{i}_right", reset_less=True) for i in range(R)]
                    for b in range(2)]
        for b in range(2):
            for i in range(R):
                m.d.sync += [we[b][i].eq(w_we[i] & (w_bank == b)),
                             we_right[b][i].eq(w_we[i] & (w_bank == b))]

        # The PE grid.
        pes = [[ProcessingElement(psum_bits) for _ in range(C)] for _ in range(R)]
        for i in range(R):
            for j in range(C):
                pe = pes[i][j]
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += [
                    pe.w_data.eq(w_col[j]),
                    pe.w3_data.eq(w3_col[j]),
                    pe.wneg_data.eq(wneg_col[j]),
                    pe.we0.eq(we[0][i] if j < (C + 1) // 2 else we_right[0][i]),
                    pe.we1.eq(we[1][i] if j < (C + 1) // 2 else we_right[1][i]),
                    pe.psum_in.eq(pes[i - 1][j].psum_out if i > 0 else 0),
                ]
                if j > 0:
                    left = pes[i][j - 1]
                    m.d.comb += [pe.a_in.eq(left.a_out), pe.a_next.eq(left.a_in),
                                 pe.bank_next.eq(left.bank_out)]

        # Input skew: row i sees activation element i after i + 1 register stages, and its
        # bank one stage earlier (the PEs select the bank a cycle ahead).
        for i in range(R):
            a_prev = self.a_stream.payload.data[i]
            bank_prev = cur_bank
            for s in range(i + 1):
                a_reg = Signal(signed(OPERAND_BITS), name=f"skew_a_{i}_{s}")
                m.d.sync += a_reg.eq(a_prev)
                if s == i:
                    m.d.comb += [pes[i][0].a_next.eq(a_prev), pes[i][0].bank_next.eq(bank_prev)]
                else:
                    bank_reg = Signal(name=f"skew_bank_{i}_{s}")
                    m.d.sync += bank_reg.eq(bank_prev)
                    bank_prev = bank_reg
                a_prev = a_reg
            m.d.comb += pes[i][0].a_in.eq(a_prev)

        # Output deskew: column j is delayed by C - 1 - j more cycles.
        for j in range(C):
            out = pes[R - 1][j].psum_out
            for s in range(C - 1 - j):
                reg = Signal(signed(psum_bits), name=f"deskew_{j}_{s}")
                m.d.sync += reg.eq(out)
                out = reg
            m.d.comb += queue.result.data[j].eq(out)  # sign-extends to ACC_BITS

        # Valid and `last` travel alongside, L stages.
        valid, last = a_accept, self.a_stream.payload.last & a_accept
        for s in range(self.latency):
            v_reg = Signal(name=f"valid_{s}")
            l_reg = Signal(name=f"last_{s}")
            m.d.sync += [v_reg.eq(valid), l_reg.eq(last)]
            valid, last = v_reg, l_reg
        m.d.comb += [queue.result_valid.eq(valid), queue.result.last.eq(last)]
        m.d.comb += self.busy.eq((full != 0) | (load_row != 0) | ~queue.credit_full)
        assert psum_bits <= ACC_BITS
        return m

