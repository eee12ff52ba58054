"""``octet bench kv``: the hardware KV cache on the RTL, and the memory a paged cache wastes.

Cycles of one decode-attention step (append the new token's K and V, then q.K^T, softmax on
the host, p.V over every earlier position, all through KV_APPEND / KV_LOAD) for context lengths
64..1024 on the Verilator RTL (``octet.sim.bench_kv``), each result checked against NumPy; and
the waste (allocated minus used KV bytes, over allocated) of the page allocator
(:class:`~octet.host.kv_pages.PagedKVCache`) for a fixed mix of sequence lengths, next to what
reserving the maximum context per sequence (a contiguous cache) would waste.
"""

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from octet.bench_table import markdown_table, write_section

from .common import print_json

__all__ = ["run_kv", "CONTEXTS", "waste_mix"]

CONTEXTS = [64, 128, 256, 512, 1024]


def waste_mix(page_tokens=16, max_context=1024, sequences=64, row_bytes=32, seed=0):
    """``(paged waste, contiguous waste, lengths)`` for a fixed random mix of lengths."""
    from octet.host.kv_pages import PagedKVCache
    from octet.kv_format import KvGeometry
    from octet.sim.random_kv_programs import Recorder

    lengths = np.random.default_rng(seed).integers(1, max_context + 1, sequences)
    pages = -(-max_context // page_tokens)
    cache = PagedKVCache(Recorder(), 0, KvGeometry(page_tokens, row_bytes,
                                                   1 << (sequences * pages - 1).bit_length(),
                                                   8), max_seqs=sequences, max_pages=pages)
    cache.configure()
    for n in lengths:
        cache.reserve(cache.new_sequence(), int(n))
    allocated, used = cache.usage(row_bytes)
    contiguous = sequences * max_context
    return (allocated - used) / allocated, 1 - lengths.sum() / contiguous, lengths


def run_kv(args):
    from octet.config import AcceleratorConfig
    from octet.sim.bench_kv import HEAD_DIM, HEADS, PAGE_TOKENS

    from .bench_sim import run_bench_module

    config = AcceleratorConfig(mem_bytes=1 << 22)
    results, wall = run_bench_module(config, "octet.sim.bench_kv",
                                     {"OCTET_BENCH_CONTEXTS": json.dumps(CONTEXTS)},
                                     "bench kv")
    contexts = [r["context"] for r in results]
    cycles = [sum(r["cycles"].values()) for r in results]
    waste, contiguous, lengths = waste_mix(page_tokens=PAGE_TOKENS, max_context=max(CONTEXTS),
                                           row_bytes=HEAD_DIM)
    # Linear growth: each doubling of the context at most doubles the cycles.
    linear = all(cycles[i + 1] * contexts[i] <= cycles[i] * contexts[i + 1]
                 for i in range(len(cycles) - 1))
    bus = config.bus_bytes
    rows = []
    for r, c in zip(results, cycles, strict=True):
        moved = r["kv_bytes"]
        rows.append((r["context"], r["cycles"]["append"], r["cycles"]["scores"],
                     r["cycles"]["values"], c, f"{c / r['context']:.1f}",
                     f"{moved / bus:.0f}", f"{moved / bus / c:.1%}",
                     "yes" if r["exact"] else "NO"))
    body = "\n\n".join([
        "## Hardware KV cache (decode attention through KV_APPEND / KV_LOAD)",
        f"Measured by `octet bench kv` on {platform.machine()}, {os.cpu_count()} cores; "
        f"{time.strftime('%Y-%m-%d')}; {wall:.0f} s of wall time. 8x8 array, {bus * 8}-bit "
        f"bus, device memory inside the design. One decode step of one layer of the demo "
        f"model's shape ({HEADS} heads of {HEAD_DIM}, pages of {PAGE_TOKENS} tokens): append "
        "the new token's k and v (a projection GEMM, two KV_APPENDs), then per head KV_LOAD K "
        "-> K @ q -> int8 scores, softmax on the host, KV_LOAD V -> p @ V. Cycles are the "
        "CYCLES counter of the three programs; every output equals the NumPy reference.",
        markdown_table(["context", "append", "scores", "values", "total cycles",
                        "cycles / position", "K+V bus beats", "of total", "exact"], rows),
        "Growth: " + ("linear or better (each doubling of the context at most doubles the "
                      "cycles)" if linear else "FASTER than linear")
        + f" — goal {'met' if linear else 'NOT met'}.",
        f"Memory waste of the paged cache for {len(lengths)} sequences of lengths drawn "
        f"uniformly from 1..{max(CONTEXTS)} (seed 0): **{waste:.2%}** of the allocated KV "
        f"bytes (goal <= 5%: {'met' if waste <= 0.05 else 'NOT met'}); reserving "
        f"{max(CONTEXTS)} positions per sequence contiguously would waste {contiguous:.1%}.",
    ])
    write_section(Path(args.output), "kv", body)
    print(markdown_table(["context", "append", "scores", "values", "total cycles",
                          "cycles / position", "K+V bus beats", "of total", "exact"], rows))
    print(f"waste {waste:.2%} (contiguous would be {contiguous:.1%}); wrote the 'kv' section "
          f"of {args.output}")
    if args.json:
        print_json({"target": "kv", "context": contexts, "cycles": cycles,
                    "waste_fraction": waste, "contiguous_waste_fraction": contiguous,
                    "linear": linear, "exact": all(r["exact"] for r in results),
                    "wall_s": wall})
