"""The checks of a KV instruction: its derived geometry and its verdicts, one step per cycle.

:class:`KvChecks` is the datapath of the first phase of the KV-cache controller
(:mod:`.kv_controller`, whose state machine :mod:`.kv_sequencer` steps it). Each ``step`` input is
asserted in the controller state of the same name and registers one stage of arithmetic (a
shift, an add or a compare per cycle): the instruction's static checks, the KV area's end,
the sequence descriptor's address, the block-table range its positions cover, and the
quantities the sub-instructions are built from. The wide range compares against MEM_LIMIT
and the descriptor's page count are :func:`~.staged_compare.chunked_greater` (valid two
cycles after their operands; the controller's ``*_COMPARE`` states wait for them). The
verdict steps register the first failing check of their stage (``chk_bad``, ``chk_code``),
in the golden model's order (:func:`octet.sim.isa_kv.expand`).

Tested through the controller by ``tests/test_kv_controller.py`` (every error code against
the golden model, Amaranth simulator) and ``tests/test_kv_rtl.py`` (cocotb + Verilator).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from octet.config import AcceleratorConfig
from octet.isa import LAYOUTS, ErrorCode, Opcode
from octet.kv_format import DESCRIPTOR_BYTES, ENTRY_BYTES, GEOMETRY

from .staged_compare import chunked_greater

__all__ = ["KV_CHECK_STEPS", "KvChecks", "check_kv_arguments"]

#: The steps of :class:`KvChecks`, one flag per controller state that registers a stage.
KV_CHECK_STEPS = data.StructLayout({name: 1 for name in (
    "check", "verdict", "pool", "area_sum", "area", "desc", "range", "range_compare",
    "range_check", "table_end", "table")})


def check_kv_arguments(owner, config, opcode):
    """The argument checks shared by the KV controller's parts (``owner`` names the class)."""
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"{owner} config must be an AcceleratorConfig, not {config!r}")
    if opcode not in (Opcode.KV_LOAD, Opcode.KV_APPEND):
        raise ValueError(f"{owner} opcode must be KV_LOAD or KV_APPEND, not {opcode!r}")


class KvChecks(wiring.Component):
    """Checks a KV_LOAD or KV_APPEND and derives what its sub-instructions need.

    At most one ``step`` flag is set per cycle, in this order: ``check`` (the instruction
    and the KV registers), ``verdict``, ``pool`` (verdict: MALFORMED, KV_SEQUENCE, KV_PAGE),
    ``area_sum``, ``area`` (verdict: DRAM_RANGE), ``desc`` (once per descriptor word taken),
    ``range``, ``range_compare``, ``range_check`` (verdict: ``word_code``, KV_SEQUENCE,
    KV_RANGE), ``table_end``, ``table`` (verdict: DRAM_RANGE); the controller waits two
    cycles before a verdict that reads a staged compare. Every output is a flip-flop, named
    as before the checks had their own module (timing reports are searched by these names).

    Parameters
    ----------
    config : AcceleratorConfig
    opcode : Opcode
        ``Opcode.KV_LOAD`` or ``Opcode.KV_APPEND``.

    Ports
    -----
    step : In(KV_CHECK_STEPS)
        The stage to register this cycle.
    word : In(256)
        The KV instruction word (held while it is worked on).
    seq_table, seq_count, pool_base : In(32)
        The KV_SEQ_TABLE, KV_SEQ_COUNT and KV_POOL_BASE registers.
    geometry : In(octet.kv_format.GEOMETRY)
    mem_limit : In(33)
    table_word : In(32)
        The descriptor word taken in a ``desc`` step (table address, then pages).
    word_bad : In(1), word_code : In(ErrorCode)
        A descriptor word came with a bus error (the ``range_check`` verdict's first check).
    chk_bad : Out(1), chk_code : Out(ErrorCode)
        The last verdict: some check of its stage failed, and the first one's error code.
    pitch : Out(17)
        ``1 << log2_row_pitch`` (registered every cycle).
    desc : Out(34)
        The sequence descriptor's address.
    lo : Out(34)
        The address of the first block-table entry the positions cover.
    n_pages : Out(18), n_pages_one : Out(1)
        How many entries they cover, and whether it is one.
    page_mask : Out(32)
        The bits a block-table entry must not have (entries must be below pool_pages;
        registered every cycle).
    page_tokens : Out(17)
        Tokens per page (registered every cycle).
    pos_slot : Out(16)
        The first position's slot within its page.
    pool_sh : Out(44)
        The first pool's first page (``pool * pool_pages``).
    sh_page : Out(5)
        log2 of one page's bytes.
    pool_step : Out(64)
        One pool's bytes (the device-address step from head to head).
    heads_m1 : Out(8), heads_m2 : Out(9)
        ``heads - 1`` and ``heads - 2``.
    whole_rows : Out(1)
        KV_LOAD: whole rows packed back to back on both sides (a page segment is one LOAD
        row); always 0 for KV_APPEND.
    """

    def __init__(self, config, opcode):
        check_kv_arguments("KvChecks", config, opcode)
        self._cfg = config
        self._op = opcode
        super().__init__({
            "step": In(KV_CHECK_STEPS), "word": In(256),
            "seq_table": In(32), "seq_count": In(32), "pool_base": In(32),
            "geometry": In(GEOMETRY), "mem_limit": In(33), "table_word": In(32),
            "word_bad": In(1), "word_code": In(ErrorCode),
            "chk_bad": Out(1), "chk_code": Out(ErrorCode),
            "pitch": Out(17), "desc": Out(34), "lo": Out(34), "n_pages": Out(18),
            "n_pages_one": Out(1), "page_mask": Out(32), "page_tokens": Out(17),
            "pos_slot": Out(16), "pool_sh": Out(44), "sh_page": Out(5), "pool_step": Out(64),
            "heads_m1": Out(8), "heads_m2": Out(9), "whole_rows": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        load = self._op is Opcode.KV_LOAD
        kv = LAYOUTS[self._op](self.word)
        step = self.step
        g = self.geometry
        lpt, lpitch, lpp = g.log2_page_tokens, g.log2_row_pitch, g.log2_pool_pages

        # Per instruction, computed a step at a time (a shift, an add or a compare per cycle).
        bad_static, bad_seq, bad_pool = Signal(), Signal(), Signal()
        pool_end = Signal(13)
        sh_area = Signal(6)               # log2 of one pool's bytes
        sh_page = self.sh_page            # log2 of one page's bytes
        pools_p = Signal(43)              # pools * pool_pages
        area_off = Signal(80)
        area_end = Signal(80)
        desc = self.desc
        desc_end = Signal(35)
        pool_step = self.pool_step
        pool_sh = self.pool_sh            # pool * pool_pages
        page_mask = self.page_mask        # block-table entries must be below pool_pages
        page_tokens = self.page_tokens
        pos_slot = self.pos_slot          # pos mod page_tokens
        last_pos = Signal(17)
        end_pos = Signal(17)
        heads_m1 = self.heads_m1
        whole_rows = self.whole_rows      # whole rows packed back to back on both sides
        table_addr = Signal(32)
        pages = Signal(32)
        pages_end = Signal(48)            # pages * page_tokens
        bad_desc = Signal()
        first_page = Signal(17)
        last_page = Signal(17)
        n_pages = self.n_pages
        n_pages_one = self.n_pages_one
        lo = self.lo                      # first block-table entry to read
        hi = Signal(35)

        # Each verdict step registers its verdict (chk_bad, chk_code); the state after it acts
        # on that flip-flop, so no state decides on a compare or a bus word in the same cycle.
        chk_bad = self.chk_bad
        chk_code = self.chk_code

        def verdict(*checks):
            """Register the first failing ``(condition, code)`` of ``checks``."""
            code = 0
            for cond, c in reversed(checks):
                code = Mux(cond, c, code)
            bad = 0
            for cond, _ in checks:
                bad = bad | cond
            m.d.sync += [chk_bad.eq(bad), chk_code.eq(code)]

        # Wide compares, valid two cycles after their operands (the *_COMPARE states wait).
        bad_area = chunked_greater(m, area_end, self.mem_limit, "area")
        bad_desc_end = chunked_greater(m, desc_end, self.mem_limit, "desc")
        bad_range = chunked_greater(m, end_pos, pages_end, "range")
        bad_table = chunked_greater(m, hi, self.mem_limit, "table")

        # Decodes of the geometry register, registered every cycle (the KV registers do not
        # change while a program runs), so no enable and no decode lies in front of their
        # users: 1 << log2_row_pitch, the tokens per page and the slot-in-page mask, the
        # block-table entries' bad bits.
        pitch = self.pitch
        slot_mask = Signal(16)
        m.d.sync += [pitch.eq(1 << lpitch), page_tokens.eq(1 << lpt),
                     slot_mask.eq((1 << lpt) - 1), page_mask.eq(~((1 << lpp) - 1))]
        heads_m2 = self.heads_m2

        with m.If(step.check):
            width = kv.row_bytes if load else kv.cols
            static = ((kv.count == 0) | (kv.heads == 0) | (width == 0) |
                      (width > pitch))
            if load:
                static |= kv.target.as_value() > 1
                lanes = Mux(kv.target.as_value() == 1, kv.spad_stride * self._cfg.cols,
                            kv.spad_stride * self._cfg.rows)
                m.d.sync += whole_rows.eq((kv.row_bytes == pitch) & (lanes == pitch))
            m.d.sync += [
                bad_static.eq(static), bad_seq.eq(kv.seq >= self.seq_count),
                pool_end.eq(kv.pool + kv.heads),
                sh_area.eq(lpp + lpt + lpitch), sh_page.eq(lpt + lpitch),
                desc.eq((self.seq_table & ~7) + DESCRIPTOR_BYTES * kv.seq),
                pool_sh.eq(kv.pool << lpp), pools_p.eq(g.pools << lpp),
                pos_slot.eq(kv.pos & slot_mask),
                last_pos.eq(kv.pos + kv.count - 1), end_pos.eq(kv.pos + kv.count),
                heads_m1.eq(kv.heads - 1), heads_m2.eq(kv.heads - 2),
            ]
        with m.If(step.verdict):
            # pools << sh_area in two shifts (lpp in check, lpt + lpitch here).
            m.d.sync += [area_off.eq(pools_p << sh_page), pool_step.eq(1 << sh_area),
                         desc_end.eq(desc + DESCRIPTOR_BYTES)]
            m.d.sync += bad_pool.eq(pool_end > g.pools)
        with m.If(step.pool):
            verdict((bad_static, ErrorCode.MALFORMED), (bad_seq, ErrorCode.KV_SEQUENCE),
                    (bad_pool, ErrorCode.KV_PAGE))
        with m.If(step.area_sum):
            m.d.sync += area_end.eq(self.pool_base + area_off)
        with m.If(step.area):
            verdict((bad_area | bad_desc_end, ErrorCode.DRAM_RANGE))
        with m.If(step.desc):
            m.d.sync += [table_addr.eq(pages), pages.eq(self.table_word)]
        with m.If(step.range):
            m.d.sync += [bad_desc.eq((pages == 0) | (table_addr[:2] != 0)),
                         pages_end.eq(pages << lpt),
                         first_page.eq(kv.pos >> lpt), last_page.eq(last_pos >> lpt)]
        with m.If(step.range_compare):
            m.d.sync += [n_pages.eq(last_page - first_page + 1),
                         lo.eq(table_addr + ENTRY_BYTES * first_page)]
        with m.If(step.range_check):
            verdict((self.word_bad, self.word_code), (bad_desc, ErrorCode.KV_SEQUENCE),
                    (bad_range, ErrorCode.KV_RANGE))
        with m.If(step.table_end):
            m.d.sync += [hi.eq(lo + ENTRY_BYTES * n_pages), n_pages_one.eq(n_pages == 1)]
        with m.If(step.table):
            verdict((bad_table, ErrorCode.DRAM_RANGE))
        return m
