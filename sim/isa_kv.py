"""Golden model of the KV-cache controller: KV_LOAD and KV_APPEND as checks plus sub-transfers.

:func:`expand` is the reference for ``hdl/kv_controller.py``. It checks one KV instruction in
the same order as the hardware (MALFORMED fields, the sequence id, the pools, the KV area, the
descriptor, the positions, the block-table range, every block-table entry) and raises
:class:`~octet.sim.isa_sched.Fault` before anything is moved; then it returns the LOAD or
STORE sub-instructions the controller hands to the load or store unit, in the controller's
order (per page segment, per head). A KV_LOAD whose rows fill whole scratchpad rows back to
back (``row_bytes`` equal to the row pitch and ``spad_stride`` scratchpad rows of exactly that
many bytes) moves each page segment as one LOAD row of ``count * pitch`` bytes, one burst
instead of one per token. Scratchpad and accumulator row arithmetic wraps at 2**16
and parameter addresses at 2**32, as in the 16- and 32-bit instruction fields; device
addresses cannot wrap because the whole KV area is checked against MEM_LIMIT.
Tested through ``tests/test_isa_kv.py`` and, against the RTL, ``tests/test_kv_rtl.py``.
"""

from octet.bitfields import unpack_fields
from octet.isa import ErrorCode, Opcode, StoreMode, Target
from octet.kv_format import DESCRIPTOR_BYTES, ENTRY_BYTES, GEOMETRY

from .isa_sched import Fault

__all__ = ["KvRegisters", "expand", "words_read"]

_M16 = 0xFFFF
_M32 = 0xFFFF_FFFF


class KvRegisters:
    """The four KV registers as the hardware holds them (raw 32-bit values)."""

    def __init__(self):
        self.seq_table = 0
        self.seq_count = 0
        self.pool_base = 0
        self.geometry = 0


def _word(memory, addr):
    return int.from_bytes(memory[addr:addr + 4].tobytes(), "little")


def expand(config, op, f, regs, memory, check_dram, pc):
    """Check a KV_LOAD / KV_APPEND and return ``(sub_instructions, table_pages)``.

    Parameters
    ----------
    config : AcceleratorConfig
        For the scratchpad row widths.
    op : Opcode
    f : dict
        The instruction's fields (header flags included).
    regs : KvRegisters
    memory : numpy.ndarray of uint8
        Device memory.
    check_dram : callable
        ``check_dram(pc, lo, hi, what)``: DRAM_RANGE / BUS_ERROR for an illegal range.
    pc : int
        Address of the instruction (for the Fault).

    Returns
    -------
    list of (Opcode, dict)
        LOAD or STORE instructions with every field, flags included.
    int
        Block-table entries the instruction covers (each read twice by the controller).
    """
    g = unpack_fields(GEOMETRY, regs.geometry)
    lpt, lpitch, lpp, pools = (g["log2_page_tokens"], g["log2_row_pitch"],
                               g["log2_pool_pages"], g["pools"])
    pitch = 1 << lpitch
    load = op is Opcode.KV_LOAD
    name = op.name
    width_field = "row_bytes" if load else "cols"
    if load and f["target"] not in (Target.INPUT.value, Target.WEIGHT.value):
        raise Fault(ErrorCode.MALFORMED, pc, f"{name} target {f['target']} is not assigned")
    for field in ("count", "heads", width_field):
        if f[field] == 0:
            raise Fault(ErrorCode.MALFORMED, pc, f"{name} {field} is 0")
    if f[width_field] > pitch:
        raise Fault(ErrorCode.MALFORMED, pc,
                    f"{name} {width_field} {f[width_field]} exceeds the KV row pitch {pitch}")
    seq = f["seq"]
    if seq >= regs.seq_count:
        raise Fault(ErrorCode.KV_SEQUENCE, pc,
                    f"{name} sequence {seq} is not below KV_SEQ_COUNT {regs.seq_count}")
    if f["pool"] + f["heads"] > pools:
        raise Fault(ErrorCode.KV_PAGE, pc,
                    f"{name} pools {f['pool']}..{f['pool'] + f['heads'] - 1} are not below "
                    f"the {pools} pools of KV_GEOMETRY")
    page_shift = lpt + lpitch
    pool_shift = lpp + page_shift
    check_dram(pc, regs.pool_base, regs.pool_base + (pools << pool_shift), "KV area")
    desc = (regs.seq_table & ~7) + DESCRIPTOR_BYTES * seq
    check_dram(pc, desc, desc + DESCRIPTOR_BYTES, f"descriptor of sequence {seq}")
    table_addr, pages = _word(memory, desc), _word(memory, desc + 4)
    if pages == 0 or table_addr % ENTRY_BYTES:
        raise Fault(ErrorCode.KV_SEQUENCE, pc,
                    f"{name} sequence {seq} is free (0 pages) or its block table address "
                    f"0x{table_addr:x} is not {ENTRY_BYTES}-byte aligned")
    pos, count = f["pos"], f["count"]
    if pos + count > pages << lpt:
        raise Fault(ErrorCode.KV_RANGE, pc,
                    f"{name} positions {pos}..{pos + count - 1} of sequence {seq} go beyond "
                    f"its {pages} pages of {1 << lpt} tokens")
    p0, p1 = pos >> lpt, (pos + count - 1) >> lpt
    lo = table_addr + ENTRY_BYTES * p0
    check_dram(pc, lo, table_addr + ENTRY_BYTES * (p1 + 1), f"block table of sequence {seq}")
    entries = [_word(memory, lo + ENTRY_BYTES * i) for i in range(p1 - p0 + 1)]
    for i, page in enumerate(entries):
        if page >> lpp:
            raise Fault(ErrorCode.KV_PAGE, pc,
                        f"{name} block-table entry {p0 + i} of sequence {seq} names page "
                        f"{page}, outside the {1 << lpp} pages of a pool")
    subs = []
    done = 0
    for i, page in enumerate(entries):
        slot = (pos & ((1 << lpt) - 1)) if i == 0 else 0
        seg = min((1 << lpt) - slot, count - done)
        for h in range(f["heads"]):
            addr = (regs.pool_base + ((((f["pool"] + h) << lpp) | page) << page_shift)
                    + (slot << lpitch))
            first = done == 0 and h == 0
            last = done + seg == count and h == f["heads"] - 1
            if load:
                width = config.cols if f["target"] == Target.WEIGHT.value else config.rows
                # Whole rows packed back to back on both sides: one row of the segment.
                whole = (f["row_bytes"] == pitch and f["spad_stride"] * width == pitch
                         and seg * pitch <= _M16)
                subs.append((Opcode.LOAD, {
                    "target": f["target"], "rows": 1 if whole else seg,
                    "row_bytes": seg * pitch if whole else f["row_bytes"],
                    "spad_addr": (f["spad_addr"] + h * f["spad_head_step"]
                                  + done * f["spad_stride"]) & _M16,
                    "spad_stride": f["spad_stride"], "dram_addr": addr, "dram_stride": pitch,
                    "pop_prev": 0, "push_prev": 0,
                    "pop_next": f["pop_next"] if first else 0,
                    "push_next": f["push_next"] if last else 0}))
            else:
                subs.append((Opcode.STORE, {
                    "mode": StoreMode.INT8.value, "rows": seg, "cols": f["cols"],
                    "acc_addr": (f["acc_addr"] + h * f["acc_head_step"] + done) & _M16,
                    "acc_n_step": f["acc_n_step"], "dram_addr": addr, "dram_stride": pitch,
                    "param_addr": (f["param_addr"] + h * f["param_head_step"]) & _M32,
                    "zero_point": f["zero_point"], "relu": 0,
                    "param_src": f.get("param_src", 0),
                    "param_slot": (f.get("param_slot", 0) + h * (f["param_head_step"] >> 4))
                    & _M16,
                    "pop_next": 0, "push_next": 0,
                    "pop_prev": f["pop_prev"] if first else 0,
                    "push_prev": f["push_prev"] if last else 0}))
        done += seg
    return subs, len(entries)


def words_read(table_pages):
    """32-bit words the controller reads for one instruction: descriptor, table twice."""
    return DESCRIPTOR_BYTES // 4 + 2 * table_pages
