"""Amaranth-simulator unit tests of the KV-cache controller and its word reader.

The controller alone, with a behavioural memory answering its reads after random delays and a
unit that takes instructions with random stalls: the LOADs / STOREs it hands over must be
exactly those of the golden model (``octet.sim.isa_kv.expand``), and a bad instruction must
report the golden model's error code and hand nothing over. Pass-through instructions go by
unchanged. The full controller in the accelerator is tested by ``tests/test_kv_rtl.py``.
"""

import gc
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from octet.config import AcceleratorConfig
from octet.hdl.kv_checks import KvChecks
from octet.hdl.kv_controller import KvController, kv_decode
from octet.hdl.kv_sub_instruction import KvSubInstruction
from octet.hdl.word_reader import WordReader
from octet.host.kv_pages import PagedKVCache
from octet.isa import ErrorCode, Opcode, decode, encode
from octet.kv_format import KvGeometry
from octet.sim.isa_kv import KvRegisters, expand
from octet.sim.isa_sched import Fault
from octet.sim.random_kv_programs import Recorder

# Constructors that raise still register an elaboratable; their warnings come at collection.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

CFG = AcceleratorConfig(rows=4, cols=4, input_rows=512, weight_rows=512, acc_rows=256,
                        bus_bytes=8, mem_bytes=1 << 16)
PC = 0x400


def _memory_and_cache(seed):
    rec = Recorder()
    cache = PagedKVCache(rec, 0x1000, KvGeometry(4, 16, 16, 8), max_seqs=4, max_pages=6)
    cache.configure()
    rng = random.Random(seed)
    for _ in range(3):
        cache.reserve(cache.new_sequence(), rng.randint(1, 24))
    mem = np.frombuffer(random.Random(seed + 1).randbytes(CFG.mem_bytes), np.uint8).copy()
    for addr, blob in cache.image():
        mem[addr:addr + len(blob)] = np.frombuffer(blob, np.uint8)
    regs = KvRegisters()
    regs.seq_table, regs.seq_count = cache.seq_table, cache.max_seqs
    regs.pool_base, regs.geometry = cache.geometry.pool_base, cache.geometry.register()
    return mem, cache, regs


def _golden(op, fields, regs, mem):
    def check(pc, lo, hi, what):
        if hi > len(mem):
            raise Fault(ErrorCode.DRAM_RANGE, pc, what)
    try:
        subs, _ = expand(CFG, op, {"pop_prev": 0, "pop_next": 0, "push_prev": 0, "push_next": 0,
                              **fields}, regs, mem, check, PC)
        return subs, None
    except Fault as fault:
        return [], fault.code


def _simulate(op, words, regs, mem, seed):
    """Feed ``words`` (instruction ints) through the controller; return (words out, error)."""
    dut = KvController(CFG, op)
    rng = random.Random(seed)
    out, error = [], []

    async def bench(ctx):
        ctx.set(dut.seq_table, regs.seq_table)
        ctx.set(dut.seq_count, regs.seq_count)
        ctx.set(dut.pool_base, regs.pool_base)
        ctx.set(dut.geometry.as_value(), regs.geometry)
        ctx.set(dut.mem_limit, len(mem))
        ctx.set(dut.token_available, 1)
        pending = []                     # (ready cycle, address) of reads in flight
        queue = list(words)
        cycle = 0
        while cycle < 20_000:
            ctx.set(dut.i_instr.valid, bool(queue))
            if queue:
                ctx.set(dut.i_instr.payload.word, queue[0])
                ctx.set(dut.i_instr.payload.pc, PC)
                ctx.set(dut.i_is_kv, (queue[0] & 0xF) == op.value)   # kv_decode(op)
            ctx.set(dut.o_instr.ready, rng.random() < 0.6)
            ctx.set(dut.o_req.ready, rng.random() < 0.7)
            due = bool(pending) and pending[0][0] <= cycle
            ctx.set(dut.i_data.valid, due)
            if due:
                a = pending[0][1]
                ctx.set(dut.i_data.payload.data, int.from_bytes(mem[a:a + 8].tobytes(),
                                                                "little"))
            if queue and ctx.get(dut.i_instr.ready):
                queue.pop(0)
            if ctx.get(dut.o_instr.valid) and ctx.get(dut.o_instr.ready):
                out.append(ctx.get(dut.o_instr.payload.word))
            if ctx.get(dut.o_req.valid) and ctx.get(dut.o_req.ready):
                pending.append((cycle + rng.randint(1, 6), ctx.get(dut.o_req.payload.addr)))
            if due and ctx.get(dut.i_data.ready):
                pending.pop(0)
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.error.valid):
                error.append(ErrorCode(ctx.get(dut.error.code)))
                return
            if not queue and not ctx.get(dut.busy) and not pending:
                return

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out, (error[0] if error else None)


def _random_fields(op, cache, rng, whole=False):
    seq = rng.choice(cache.sequences())
    allocated = len(cache.pages(seq)) * cache.geometry.page_tokens
    pos = rng.randrange(allocated)
    f = dict(seq=seq, pool=rng.randrange(0, 6), heads=rng.randint(1, 2), pos=pos,
             count=rng.randint(1, allocated - pos))
    if op is Opcode.KV_LOAD:
        f.update(target=rng.randint(0, 1), row_bytes=rng.randint(1, 16),
                 spad_addr=rng.randrange(512), spad_stride=rng.randint(1, 5),
                 spad_head_step=rng.randrange(100), pop_next=1, push_next=1)
        if whole:          # whole rows back to back: one LOAD row per page segment
            f.update(row_bytes=16, spad_stride=16 // 4)
    else:
        f.update(cols=rng.randint(1, 16), acc_addr=rng.randrange(256),
                 acc_n_step=rng.randrange(8), acc_head_step=rng.randrange(40),
                 param_addr=16 * rng.randrange(100), param_head_step=rng.randrange(300),
                 zero_point=rng.randint(-128, 127), pop_prev=1, push_prev=1)
    return f


@pytest.mark.parametrize("op", [Opcode.KV_LOAD, Opcode.KV_APPEND])
@pytest.mark.parametrize("seed", range(6))
def test_translation_matches_golden(op, seed):
    mem, cache, regs = _memory_and_cache(seed)
    rng = random.Random(seed)
    fields = _random_fields(op, cache, rng, whole=seed >= 4)
    want, code = _golden(op, fields, regs, mem)
    assert code is None
    passthrough = encode(Opcode.LOAD if op is Opcode.KV_LOAD else Opcode.STORE, rows=1)
    got, error = _simulate(op, [passthrough, encode(op, **fields), passthrough], regs, mem,
                           seed)
    assert error is None
    assert got[0] == passthrough and got[-1] == passthrough
    subs = [decode(w) for w in got[1:-1]]
    if seed >= 4 and op is Opcode.KV_LOAD:
        assert all(f["rows"] == 1 for _, f in subs)
    assert [(o, {k: v for k, v in f.items()}) for o, f in subs] == \
        [(o, {k: getattr(v, "value", v) for k, v in f.items()}) for o, f in want]


@pytest.mark.parametrize("case, code", [
    ("seq", ErrorCode.KV_SEQUENCE), ("free", ErrorCode.KV_SEQUENCE),
    ("range", ErrorCode.KV_RANGE), ("entry", ErrorCode.KV_PAGE), ("pool", ErrorCode.KV_PAGE),
    ("count", ErrorCode.MALFORMED), ("pitch", ErrorCode.MALFORMED)])
def test_errors_match_golden(case, code):
    mem, cache, regs = _memory_and_cache(7)
    seq = cache.sequences()[0]
    f = dict(seq=seq, pool=0, heads=1, pos=0, count=1, cols=8, param_addr=0)
    if case == "seq":
        f["seq"] = 3
    elif case == "free":
        mem[cache.seq_table + 8 + 4:cache.seq_table + 16] = 0     # slot 1: 0 pages
        f["seq"] = 1
    elif case == "range":
        f["pos"] = len(cache.pages(seq)) * 4
    elif case == "entry":
        mem[cache.tables:cache.tables + 4] = np.frombuffer((16).to_bytes(4, "little"), np.uint8)
    elif case == "pool":
        f.update(pool=7, heads=2)
    elif case == "count":
        f["count"] = 0
    elif case == "pitch":
        f["cols"] = 17
    assert _golden(Opcode.KV_APPEND, f, regs, mem) == ([], code)
    got, error = _simulate(Opcode.KV_APPEND, [encode(Opcode.KV_APPEND, **f)], regs, mem, 1)
    assert (got, error) == ([], code)


def test_word_reader_rejects_bus_width():
    with pytest.raises(ValueError, match="WordReader bus_bytes must be 4, 8 or 16, not 3"):
        WordReader(3)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_controller_checks_arguments():
    with pytest.raises(TypeError, match="KvController config must be an AcceleratorConfig"):
        KvController(None, Opcode.KV_LOAD)
    with pytest.raises(ValueError, match="KvController opcode must be KV_LOAD or KV_APPEND"):
        KvController(CFG, Opcode.LOAD)
    with pytest.raises(ValueError, match="kv_decode opcode must be KV_LOAD or KV_APPEND"):
        kv_decode(Opcode.STORE)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_controller_parts_check_arguments():
    with pytest.raises(TypeError, match="KvChecks config must be an AcceleratorConfig"):
        KvChecks(None, Opcode.KV_LOAD)
    with pytest.raises(ValueError, match="KvChecks opcode must be KV_LOAD or KV_APPEND"):
        KvChecks(CFG, Opcode.STORE)
    with pytest.raises(ValueError, match="KvSubInstruction opcode must be KV_LOAD or KV_APPEND"):
        KvSubInstruction(Opcode.LOAD)
    gc.collect()      # the half-built components warn now, inside the filter
