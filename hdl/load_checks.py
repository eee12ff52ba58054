"""Range checks of LOAD and IM2COL, and the IM2COL address set-up, over several cycles.

Every product of instruction fields (row counts times strides, image sizes, pixel offsets)
comes from a :class:`~.serial_multiplier.SerialMultiplier`, a few at a time; sums and
comparisons each get a cycle of their own. The errors and their order are those of the golden
model (:mod:`octet.sim.isa_sim`): MALFORMED (a field combination), then SPAD_RANGE, then
DRAM_RANGE; the field checks that need no product report at once.

Tested through the load unit by the accelerator tests (against the golden simulator).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import LAYOUTS, ErrorCode, Opcode, Target

from .const_div import floor_div_const
from .serial_multiplier import SerialMultiplier, staged_greater

__all__ = ["LoadChecks"]


def _ceil_div(value, d):
    """``ceil(value / d)`` of a 16-bit field, without a divider."""
    return floor_div_const(value + d - 1, d, 17)


class LoadChecks(wiring.Component):
    """Checks one LOAD or IM2COL instruction.

    Parameters
    ----------
    config : AcceleratorConfig

    Ports
    -----
    start : In(1)
        Begin with ``word`` (stable from the cycle before ``start`` until ``done``: the field
        checks are registered).
    word : In(256)
    mem_limit : In(33)
    done : Out(1)
        One cycle (registered, never the cycle of ``start``): ``code`` is the result
        (``ErrorCode.NONE``: the instruction may run).
    code : Out(ErrorCode)
    failed : Out(1)
        ``code != ErrorCode.NONE``, registered with it.
    ix_start, iy_start : Out(signed(18))
        IM2COL: ox0*stride - pad and oy0*stride - pad.
    pix_start, line_start, wc, sc, swc : Out(32)
        IM2COL: see :class:`~.segment_generators.Im2colGenerator`.
    """

    def __init__(self, config):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"LoadChecks config must be an AcceleratorConfig, not {config!r}")
        self._cfg = config
        super().__init__({
            "start": In(1), "word": In(256), "mem_limit": In(33),
            "done": Out(1), "code": Out(ErrorCode), "failed": Out(1),
            "ix_start": Out(signed(18)), "iy_start": Out(signed(18)),
            "pix_start": Out(32), "line_start": Out(32),
            "wc": Out(32), "sc": Out(32), "swc": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        R = cfg.rows
        ld = LAYOUTS[Opcode.LOAD](self.word)
        ic = LAYOUTS[Opcode.IM2COL](self.word)
        # The opcode test and ``rows - 1`` are registered (``word`` is stable from the cycle
        # before ``start``), so the multipliers' operand multiplexers start from flip-flops.
        is_load = Signal()
        rows_m1 = Signal(16)
        m.d.sync += [is_load.eq(self.word[:4] == Opcode.LOAD), rows_m1.eq(ld.rows - 1)]

        muls = [SerialMultiplier(48, 16, 48, b_flag=True)] + [
            SerialMultiplier(40, 16, 40, b_flag=True) for _ in range(4)]
        for i, mul in enumerate(muls):
            m.submodules[f"mul{i}"] = mul
        # "No multiplier busy", registered from the multipliers' next busy flags (the same
        # value as NOR of their busy outputs, without the OR in front of every start).
        free = Signal(init=1)
        m.d.sync += free.eq(~Cat(*(mul.busy_next for mul in muls)).any())
        p = [mul.product for mul in muls]

        # Every multiplier operand ``b`` is an instruction field (or ``cc``, from one), and
        # ``word`` is stable from the cycle before ``start``: their ``!= 0`` flags are
        # registered every cycle and given to the multipliers, so that no operand multiplexer
        # and compare run in front of their ``busy``.
        def nz(value, name):
            q = Signal(name=f"{name}_nz")
            m.d.sync += q.eq(value[:16] != 0)
            return q

        # Each state's operands are driven whether or not the multipliers are free, and only
        # ``start`` waits for them.
        def operands(*jobs):
            for mul, (a, b, b_nz) in zip(muls, jobs, strict=False):   # (fewer jobs: idle)
                m.d.comb += [mul.a.eq(a), mul.b.eq(b), mul.b_nonzero.eq(b_nz)]

        def multiply(*jobs):
            for mul in muls[:len(jobs)]:
                m.d.comb += mul.start.eq(1)

        rows_per = Signal(17)           # LOAD: scratchpad rows per DRAM row
        spad_limit = Signal(17)
        spad_base = Signal(17)
        dram_base = Signal(33)
        spad_end = Signal(41)
        dram_end = Signal(49)
        bad_stride = Signal()
        cc = Signal(13)
        hwc, pad_c, pad_wc = Signal(40), Signal(32), Signal(32)
        line_sum = Signal(32)
        pad_sum = Signal(32)

        # done and code are registers: the unit acts on them at once.
        m.d.sync += self.done.eq(0)

        # Valid a cycle after their operands: COMPARE waits for them.
        bad_spad = staged_greater(m, spad_end, spad_limit, "spad")
        bad_dram = staged_greater(m, dram_end, self.mem_limit, "dram")

        def finish(code):
            m.d.sync += [self.done.eq(1), self.code.eq(code),
                         self.failed.eq(code != ErrorCode.NONE)]
            m.next = "IDLE"

        def malformed():
            m.next = "MALFORMED"

        # The field checks, registered: word is stable a cycle before start.
        load_malformed, im2col_malformed = Signal(), Signal()
        m.d.sync += [
            load_malformed.eq((ld.rows == 0) | (ld.row_bytes == 0) | (ld.target.as_value() > 1)),
            im2col_malformed.eq((ic.count == 0) | (ic.height == 0) | (ic.width == 0) |
                                (ic.channels == 0) | (ic.kernel_h == 0) | (ic.kernel_w == 0) |
                                (ic.stride == 0) | (ic.out_w == 0) | (ic.ox0 >= ic.out_w))]

        rows_m1_nz = nz(ld.rows - 1, "rows_m1")
        width_nz, kernel_w_nz, stride_nz = (nz(ic.width, "width"), nz(ic.kernel_w, "kernel_w"),
                                            nz(ic.stride, "stride"))
        height_nz, pad_nz = nz(ic.height, "height"), nz(ic.pad, "pad")
        cc_nz = nz(_ceil_div(ic.channels, R)[:len(cc)], "cc")
        count_nz, oy0_nz, ox0_nz = nz(ic.count, "count"), nz(ic.oy0, "oy0"), nz(ic.ox0, "ox0")

        with m.FSM():
            with m.State("IDLE"):
                # The products start whatever the field checks say (a malformed instruction
                # only ignores them), so the multipliers' start does not wait for the checks.
                load_jobs = ((ld.dram_stride, rows_m1, rows_m1_nz),
                             (ld.spad_stride, rows_m1, rows_m1_nz))
                im2col_jobs = ((ic.channels, ic.width, width_nz),
                               (ic.kernel_h, ic.kernel_w, kernel_w_nz),
                               (ic.channels, ic.stride, stride_nz),
                               (ic.ox0, ic.stride, stride_nz),
                               (ic.oy0, ic.stride, stride_nz))
                with m.If(is_load):
                    operands(*load_jobs)
                with m.Else():
                    operands(*im2col_jobs)
                with m.If(self.start & is_load):
                    is_input = ld.target == Target.INPUT
                    m.d.sync += [
                        rows_per.eq(Mux(is_input, _ceil_div(ld.row_bytes, R),
                                        _ceil_div(ld.row_bytes, cfg.cols))),
                        spad_limit.eq(Mux(is_input, cfg.input_rows, cfg.weight_rows)),
                        dram_base.eq(ld.dram_addr + ld.row_bytes)]
                    multiply(*load_jobs)
                    with m.If(load_malformed):
                        malformed()
                    with m.Else():
                        m.next = "LOAD_BASE"
                with m.Elif(self.start):
                    m.d.sync += [cc.eq(_ceil_div(ic.channels, R)),
                                 spad_limit.eq(cfg.input_rows)]
                    multiply(*im2col_jobs)
                    with m.If(im2col_malformed):
                        malformed()
                    with m.Else():
                        m.next = "IM2COL_MUL1"
            with m.State("LOAD_BASE"):
                m.d.sync += spad_base.eq(ld.spad_addr + rows_per)
                m.next = "LOAD_MUL"
            with m.State("LOAD_MUL"):
                with m.If(free):
                    m.d.sync += [spad_end.eq(spad_base + p[1]), dram_end.eq(dram_base + p[0]),
                                 bad_stride.eq((ld.rows > 1) & (ld.spad_stride < rows_per))]
                    m.next = "COMPARE"
            with m.State("IM2COL_MUL1"):
                jobs = ((p[0], ic.height, height_nz), (p[1], cc, cc_nz),
                        (p[0], ic.stride, stride_nz), (ic.channels, ic.pad, pad_nz),
                        (p[0], ic.pad, pad_nz))
                operands(*jobs)
                with m.If(free):
                    m.d.sync += [self.wc.eq(p[0]), self.sc.eq(p[2]),
                                 self.ix_start.eq(p[3] - ic.pad),
                                 self.iy_start.eq(p[4] - ic.pad)]
                    multiply(*jobs)
                    m.next = "IM2COL_MUL2"
            with m.State("IM2COL_MUL2"):
                jobs = ((p[1], ic.count, count_nz), (p[2], ic.oy0, oy0_nz),
                        (self.sc, ic.ox0, ox0_nz))
                operands(*jobs)
                with m.If(free):
                    m.d.sync += [hwc.eq(p[0]), self.swc.eq(p[2]),
                                 pad_c.eq(p[3]), pad_wc.eq(p[4])]
                    multiply(*jobs)
                    m.next = "IM2COL_MUL3"
            with m.State("IM2COL_MUL3"):
                m.d.sync += pad_sum.eq(pad_c + pad_wc)
                with m.If(free):
                    m.d.sync += [spad_end.eq(ic.spad_addr + p[0]), dram_end.eq(ic.x_addr + hwc),
                                 line_sum.eq(ic.x_addr + p[1]), bad_stride.eq(0)]
                    m.next = "IM2COL_SUM"
            with m.State("IM2COL_SUM"):
                m.d.sync += self.line_start.eq(line_sum - pad_sum)
                m.next = "IM2COL_PIX"
            with m.State("IM2COL_PIX"):
                m.d.sync += self.pix_start.eq(self.line_start + p[2])
                m.next = "COMPARE"
            with m.State("MALFORMED"):
                finish(ErrorCode.MALFORMED)
            with m.State("COMPARE"):
                m.next = "VERDICT"
            with m.State("VERDICT"):
                with m.If(bad_stride):
                    finish(ErrorCode.MALFORMED)
                with m.Elif(bad_spad):
                    finish(ErrorCode.SPAD_RANGE)
                with m.Elif(bad_dram):
                    finish(ErrorCode.DRAM_RANGE)
                with m.Else():
                    finish(ErrorCode.NONE)
        return m
