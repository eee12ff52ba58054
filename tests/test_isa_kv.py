"""The KV cache on the golden simulator and the host's page allocator.

Checked against independent NumPy (``octet.host.kv_attention.reference_step`` and direct
requantization of the projection), not against the golden model itself.
"""

import numpy as np
import pytest

from octet.config import AcceleratorConfig
from octet.host.device import AcceleratorError, GoldenDevice
from octet.host.kv_attention import (
    AttentionHeads,
    decode_attention_step,
    reference_step,
    uniform_params,
)
from octet.host.kv_pages import KvCacheFull, PagedKVCache
from octet.isa import ErrorCode, Reg, encode_program
from octet.kv_format import KvGeometry
from octet.sim import golden
from octet.sim.random_kv_programs import ERROR_CASES, KvWorkload, Recorder, error_program

CFG = AcceleratorConfig(rows=4, cols=4, input_rows=512, weight_rows=512, acc_rows=256,
                        bus_bytes=8, mem_bytes=1 << 18)


def test_decode_steps_match_numpy():
    """Append through KV_APPEND and attend through KV_LOAD, two sequences interleaved."""
    dev = GoldenDevice(CFG)
    heads, d = 2, 8
    layer = AttentionHeads(k_pool=0, v_pool=heads, heads=heads, head_dim=d)
    cache = PagedKVCache(dev, 0x10000, KvGeometry(4, d, 16, 2 * heads), max_seqs=2,
                         max_pages=4)
    cache.configure()
    seqs = [cache.new_sequence(), cache.new_sequence()]
    rng = np.random.default_rng(5)
    scratch = -(-cache.end // 64) * 64
    for step in range(10):
        seq = seqs[step % 2]
        x = rng.integers(-128, 128, 8, dtype=np.int8)
        w = rng.integers(-128, 128, (8, 2 * heads * d), dtype=np.int8)
        q = rng.integers(-128, 128, (heads, d), dtype=np.int8)
        out, cycles = decode_attention_step(dev, cache, seq, layer, x, w, (1 << 30, -6), q,
                                            (1 << 30, -8), scratch)
        T = cache.length(seq)
        k, v = (np.stack([cache.read_rows(seq, p + h, 0, T, d) for h in range(heads)])
                for p in (0, heads))
        new = golden.requantize(golden.matmul_int32(x[None, :], w),
                                uniform_params((1 << 30, -6), 2 * heads * d))[0]
        assert np.array_equal(np.concatenate([k[:, -1].ravel(), v[:, -1].ravel()]), new)
        assert np.array_equal(out, reference_step(k, v, q, (1 << 30, -8)))
        assert set(cycles) == {"append", "scores", "values"}
    # The two sequences' pages interleave: page boundaries were crossed in both.
    assert sorted(cache.pages(seqs[0]) + cache.pages(seqs[1])) == [0, 1, 2, 3]


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_write_nothing_after_the_fault(case):
    dev = GoldenDevice(CFG)
    work = KvWorkload(CFG, np.random.default_rng(3))
    for reg, value in work.registers:
        dev.write_reg(reg, value)
    prog, writes = error_program(work, case)
    rng = np.random.default_rng(4)
    dev.write_mem(0, rng.integers(0, 256, CFG.mem_bytes, dtype=np.uint8).tobytes())
    for addr, blob in writes:
        dev.write_mem(addr, blob)
    before = np.frombuffer(dev.read_mem(0, CFG.mem_bytes), np.uint8).copy()
    dev.write_program(work.program, encode_program(prog))
    with pytest.raises(AcceleratorError) as info:
        dev.run(work.program)
    assert info.value.code == ErrorCode[ERROR_CASES[case]]
    assert info.value.fault_pc == work.program + 32
    after = np.frombuffer(dev.read_mem(0, CFG.mem_bytes), np.uint8)
    changed = np.flatnonzero(before != after)
    seq = work.cache.sequences()[0]
    row = work.cache.row_address(seq, 0, work.cache.length(seq) - 1)
    program = set(range(work.program, work.program + 32 * len(prog)))
    assert set(changed) - program <= set(range(row, row + work.d)), \
        "only the good append before the fault may write"


def test_geometry_and_register_round_trip():
    g = KvGeometry(page_tokens=16, row_pitch=64, pool_pages=256, pools=32, pool_base=0x4000)
    assert KvGeometry.from_registers(g.register(), 0x4000) == g
    assert g.row_address(3, 5, 7) == 0x4000 + ((3 * 256 + 5) * 16 + 7) * 64
    with pytest.raises(ValueError, match="KV page_tokens must be a power of two"):
        KvGeometry(page_tokens=12, row_pitch=64, pool_pages=8, pools=1)
    with pytest.raises(ValueError, match="KV pools must be an integer from 1 to 4095"):
        KvGeometry(page_tokens=16, row_pitch=64, pool_pages=8, pools=0)


def test_pages_are_reused_and_waste_is_the_last_page_tail():
    rec = Recorder()
    cache = PagedKVCache(rec, 0, KvGeometry(16, 32, 8, 4), max_seqs=3, max_pages=4)
    cache.configure()
    assert (Reg.KV_SEQ_COUNT, 3) in rec.regs
    a, b = cache.new_sequence(), cache.new_sequence()
    cache.reserve(a, 40)                      # 3 pages, 8 rows of the last unused
    cache.reserve(b, 16)                      # 1 page, full
    allocated, used = cache.usage(32)
    assert allocated == 4 * 16 * 32 * 4 and used == 56 * 32 * 4
    freed = cache.pages(a)
    cache.free(a)
    c = cache.new_sequence()
    cache.reserve(c, 33)
    assert set(cache.pages(c)) == set(freed)
    with pytest.raises(KvCacheFull, match="more than its block table's 4"):
        cache.reserve(c, 65)
    cache.reserve(b, 64)                      # the last 3 of the 4 free pages
    with pytest.raises(KvCacheFull, match="needs 3 more pages, 1 are free"):
        cache.reserve(cache.new_sequence(), 33)
    with pytest.raises(KeyError, match="KV sequence 7 is not in use"):
        cache.pages(7)
