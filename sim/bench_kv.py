"""cocotb module behind ``octet bench kv``: decode-attention steps through the hardware KV cache.

Runs on ``AcceleratorWithMemory`` with :class:`~octet.sim.fast_device.FastVerilatorDevice`. For
each context length T of ``$OCTET_BENCH_CONTEXTS`` a fresh sequence gets positions 0..T-2 written
straight into its pages (random int8 K and V, through the block table the host keeps), then one
decode step runs on the RTL: KV_APPEND of the new token's k and v (from a projection GEMM), the
scores program (KV_LOAD of K, K @ q), the host softmax and the values program (KV_LOAD of V,
p @ V). The output is checked against the NumPy reference; cycles are the accelerator's CYCLES
counter of the three programs. Results go to ``$OCTET_BENCH_OUT`` (JSON).
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.task import bridge

from octet.config import AcceleratorConfig
from octet.host.kv_attention import AttentionHeads, decode_attention_step, reference_step
from octet.host.kv_pages import PagedKVCache
from octet.kv_format import KvGeometry
from octet.sim.fast_device import start_fast_device

#: The demo model's attention shape: 4 heads of 32, pages of 16 tokens.
HEADS, HEAD_DIM, PAGE_TOKENS = 4, 32, 16
SCALES = {"kv": (1 << 30, -6), "score": (1 << 30, -10)}


def _prefill(device, cache, seq, layer, n, rng):
    """Positions 0..n-1 of ``seq``: random rows written page by page into every pool."""
    cache.reserve(seq, n)
    g = cache.geometry
    for pool in range(2 * layer.heads):
        for index, page in enumerate(cache.pages(seq)):
            rows = min(g.page_tokens, n - index * g.page_tokens)
            if rows <= 0:
                break
            block = rng.integers(-128, 128, (rows, g.row_pitch), dtype=np.int8)
            device.write_mem(g.row_address(pool, page, 0), block.tobytes())


@cocotb.test()
async def bench(dut):
    """One decode-attention step per context length; write the measurements."""
    config = AcceleratorConfig(**json.loads(os.environ["OCTET_CONFIG"]))
    contexts = json.loads(os.environ["OCTET_BENCH_CONTEXTS"])
    device = await start_fast_device(dut, config)
    layer = AttentionHeads(k_pool=0, v_pool=HEADS, heads=HEADS, head_dim=HEAD_DIM)
    pool_pages = 1 << (-(-max(contexts) // PAGE_TOKENS)).bit_length()
    geometry = KvGeometry(PAGE_TOKENS, HEAD_DIM, pool_pages, 2 * HEADS)

    def host():
        rng = np.random.default_rng(0)
        cache = PagedKVCache(device, 0x10000, geometry, max_seqs=2,
                             max_pages=pool_pages)
        cache.configure()
        scratch = -(-cache.end // 64) * 64
        results = []
        for T in contexts:
            seq = cache.new_sequence()
            _prefill(device, cache, seq, layer, T - 1, rng)
            x = rng.integers(-128, 128, HEAD_DIM, dtype=np.int8)
            w = rng.integers(-128, 128, (HEAD_DIM, 2 * HEADS * HEAD_DIM), dtype=np.int8)
            q = rng.integers(-128, 128, (HEADS, HEAD_DIM), dtype=np.int8)
            start = time.monotonic()
            out, cycles = decode_attention_step(device, cache, seq, layer, x, w,
                                                SCALES["kv"], q, SCALES["score"], scratch)
            wall = time.monotonic() - start
            k, v = (np.stack([cache.read_rows(seq, first + h, 0, T, HEAD_DIM)
                              for h in range(HEADS)]) for first in (layer.k_pool, layer.v_pool))
            exact = np.array_equal(out, reference_step(k, v, q, SCALES["score"]))
            cache.free(seq)
            results.append({"context": T, "cycles": cycles, "exact": bool(exact),
                            "wall_s": wall, "kv_bytes": 2 * HEADS * T * HEAD_DIM})
            print(f"bench kv: context {T}: {sum(cycles.values())} cycles "
                  f"({'exact' if exact else 'MISMATCH'})", flush=True)
        return results

    results = await bridge(host)()
    with open(os.environ["OCTET_BENCH_OUT"], "w") as handle:
        json.dump(results, handle)
