"""cocotb tests of the KV-cache controller in the accelerator, against the golden simulator.

Run by ``tests/test_kv_rtl.py`` on the accelerator with its in-design memory
(``OCTET_KV_MEMORY=fast``) and on the bare accelerator with a cocotbext-axi memory that stalls
every channel at random (``axi``). Checked against the golden device (:mod:`octet.sim.isa_sim`):
the whole device memory (random bytes everywhere as guards) and accumulator after every
program, error codes and faulting addresses; and, for a decode-attention step, also against
the NumPy reference of :mod:`octet.host.kv_attention`.
"""

import os

import cocotb
import numpy as np
from cocotb.task import bridge

from octet.host.kv_attention import (
    AttentionHeads,
    decode_attention_step,
    reference_step,
    uniform_params,
)
from octet.host.kv_pages import PagedKVCache
from octet.isa import ErrorCode, encode_program
from octet.kv_format import KvGeometry
from octet.sim import golden as golden_numerics
from octet.sim import tb_accelerator as common
from octet.sim.fast_device import start_fast_device
from octet.sim.random_kv_programs import ERROR_CASES, KvWorkload, error_program


async def _setup(dut, salt):
    if os.environ.get("OCTET_KV_MEMORY", "fast") == "fast":
        cfg = common._config()
        return cfg, await start_fast_device(dut, cfg)
    cfg, dev, _, _ = await common._setup(dut, pause=0.3, salt=salt)
    return cfg, dev


def _configure(devices, registers):
    for device in devices:
        for reg, value in registers:
            device.write_reg(reg, value)


async def _differential(dut, salt, cases):
    """Run ``cases(work, rng)`` -> ``[(label, (program, writes), expected error or None)]`` on
    the golden device and the RTL, each on a fresh image of random bytes; compare them."""
    cfg, dev = await _setup(dut, salt)
    rng = np.random.default_rng(common._seed(salt))

    def host():
        golden_dev = common._scrubbed_golden(cfg, dev)
        work = KvWorkload(cfg, rng)
        _configure((golden_dev, dev), work.registers)
        for label, make, code in cases(work, rng):
            work.host_actions()
            prog, writes = make()
            image = rng.integers(0, 256, cfg.mem_bytes, dtype=np.uint8).tobytes()
            writes.append((work.program, encode_program(prog)))
            g, r = common._run_both(cfg, dev, image, writes, work.program, golden_dev)
            want = ("ok",) if code is None else ("error", ErrorCode[code], work.program + 32)
            assert g[:len(want)] == want, f"{label}: golden device gave {g[:3]}"
            common._compare(g, r, f"{label} ({len(prog)} instructions)")
    await bridge(host)()


@cocotb.test()
async def random_kv_programs(dut):
    """Random appends (several sequences, layers, heads, page boundaries) and streams, with
    sequences freed and pages reused between programs: memory and accumulator as golden."""
    def cases(work, rng):
        for i in range(int(os.environ.get("OCTET_KV_PROGRAMS", "8"))):
            phases = int(rng.integers(1, 4))
            yield f"KV program {i}", lambda p=phases: work.random_program(phases=p), None
    await _differential(dut, 21, cases)


@cocotb.test()
async def kv_errors(dut):
    """Each KV error stops the program with the golden code and address; the good append
    before it lands, nothing after it (guard bytes everywhere else unchanged)."""
    def cases(work, rng):
        for case, code in ERROR_CASES.items():
            yield f"KV error case {case}", lambda c=case: error_program(work, c), code
    await _differential(dut, 22, cases)


@cocotb.test()
async def decode_attention(dut):
    """Decode steps (append k, v; q.K^T; softmax on the host; p.V) on the RTL equal the
    golden device and the NumPy reference bit for bit; appended rows are the requantized
    projections."""
    cfg, dev = await _setup(dut, 23)
    rng = np.random.default_rng(common._seed(23))
    C = cfg.cols
    heads, d = 2, 2 * C
    layer = AttentionHeads(k_pool=0, v_pool=heads, heads=heads, head_dim=d)
    geometry = KvGeometry(page_tokens=4, row_pitch=d, pool_pages=16, pools=2 * heads)
    kv_scale, score_scale = (1 << 30, -6), (1 << 30, -8)
    d_in = 2 * cfg.rows

    def host():
        golden_dev = common.GoldenDevice(cfg)
        caches = []
        for device in (golden_dev, dev):
            cache = PagedKVCache(device, 0x10000, geometry, max_seqs=2, max_pages=8)
            cache.configure()
            cache.new_sequence()
            caches.append(cache)
        scratch = -(-caches[0].end // 64) * 64
        for step in range(int(os.environ.get("OCTET_KV_STEPS", "9"))):
            x = rng.integers(-128, 128, d_in, dtype=np.int8)
            w = rng.integers(-128, 128, (d_in, 2 * heads * d), dtype=np.int8)
            q = rng.integers(-128, 128, (heads, d), dtype=np.int8)
            outs = [decode_attention_step(device, cache, 0, layer, x, w, kv_scale, q,
                                          score_scale, scratch)
                    for device, cache in zip((golden_dev, dev), caches, strict=True)]
            assert np.array_equal(outs[0][0], outs[1][0]), f"step {step}: RTL != golden"
            T = step + 1
            rows = [np.stack([caches[1].read_rows(0, first + h, 0, T, d) for h in range(heads)])
                    for first in (layer.k_pool, layer.v_pool)]
            want = golden_numerics.requantize(golden_numerics.matmul_int32(x[None, :], w),
                                              uniform_params(kv_scale, w.shape[1]))[0]
            got = np.concatenate([rows[0][:, T - 1].ravel(), rows[1][:, T - 1].ravel()])
            assert np.array_equal(got, want), f"step {step}: appended k/v rows differ"
            ref = reference_step(rows[0], rows[1], q, score_scale)
            assert np.array_equal(outs[1][0], ref), f"step {step}: RTL != NumPy reference"
            cocotb.log.info("decode step %d: cycles golden %s RTL %s", step, outs[0][1],
                            outs[1][1])
    await bridge(host)()

