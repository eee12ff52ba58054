"""``octet bench``: measure the design and write the tables in docs/benchmarks.md.

``core``: Verilator build time of the compute core per array size (a cold build in a fresh
cache), simulated cycles per wall second, and GEMM cycles against the ideal M*K*N/(R*C) on the
RTL for several shapes.

``decode``: the transformer's decode on the golden cycle model and the RTL
(:mod:`octet.sim.bench_decode`): ``octet run`` of a 32-byte prompt plus 64 tokens, cycles per
token against the memory-bound roofline and the Verilator wall time.

``kv``: decode-attention steps through the hardware KV cache (``octet.commands.bench_kv``).

``accel``: the whole accelerator (fetch, DMA, scratchpads, array, store) on the RTL with its
memory inside the design: a 256 x 256 x 256 GEMM (array utilization), a decode-shaped GEMV
(bus bandwidth utilization), the conv2d layers of a small CNN, and simulation speed.
"""

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from octet.bench_table import markdown_table, write_section

from .common import print_json

__all__ = ["add_parser", "run"]

GEMM_SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (1, 512, 512), (100, 30, 70)]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "bench", help="run a benchmark and write its table to docs/benchmarks.md",
        description="Run a benchmark on the Verilator RTL and write its results table to "
                    "the benchmarks file. Targets: 'core' (build time, simulation speed, "
                    "GEMM cycles against ideal).")
    p.add_argument("target", choices=["core", "accel", "kv", "decode"],
                   help="what to measure: 'core' = the array and requantizer alone, "
                        "'accel' = the full accelerator on GEMM, GEMV and conv2d workloads, "
                        "'kv' = decode-attention cycles through the hardware KV cache for "
                        "contexts 64..1024 and the paged cache's memory waste, "
                        "'decode' = the transformer's 32-byte prompt + 64 tokens on the golden "
                        "cycle model and the RTL (cycles per token against the roofline, "
                        "Verilator wall time)")
    p.add_argument("--output", default="docs/benchmarks.md", metavar="FILE.md",
                   help="Markdown file whose section for this target is rewritten "
                        "(default docs/benchmarks.md)")
    p.add_argument("--sizes", default="4x4,8x8,16x16", metavar="RxC,...",
                   help="array sizes for the build-time rows (default 4x4,8x8,16x16)")
    p.add_argument("--json", action="store_true",
                   help="also print the results as one JSON object on the last line")
    p.set_defaults(run=run)


def _parse_sizes(text):
    from octet.cli import UsageError
    sizes = []
    for item in text.split(","):
        try:
            r, c = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise UsageError(f"--sizes entry {item!r} is not of the form RxC") from None
        if not (1 <= r <= 64 and 1 <= c <= 64):
            raise UsageError(f"--sizes entry {item!r}: each dimension must be 1-64")
        sizes.append((r, c))
    return sizes


def _cold_build_seconds(rows, cols):
    from octet.hdl.compute_core import ComputeCore
    from octet.sim.verilator_build import build_model
    with tempfile.TemporaryDirectory(prefix="octet-bench-cache-") as tmp:
        old = os.environ.get("OCTET_CACHE_DIR")
        os.environ["OCTET_CACHE_DIR"] = tmp
        try:
            start = time.monotonic()
            build_model(ComputeCore(rows, cols), "octet_core", progress=False)
            return time.monotonic() - start
        finally:
            if old is None:
                os.environ.pop("OCTET_CACHE_DIR")
            else:
                os.environ["OCTET_CACHE_DIR"] = old


ACCEL_JOBS = [
    {"name": "GEMM 256x256x256", "kind": "gemm", "shape": [256, 256, 256]},
    {"name": "GEMV 1x512x512 (decode)", "kind": "gemm", "shape": [1, 512, 512]},
    {"name": "GEMM 64x64x64", "kind": "gemm", "shape": [64, 64, 64]},
    {"name": "conv1 32x32x3 -> 16, 3x3 s1 p1", "kind": "conv", "shape": [32, 32, 3, 16, 3, 1, 1]},
    {"name": "conv2 32x32x16 -> 32, 3x3 s2 p1", "kind": "conv",
     "shape": [32, 32, 16, 32, 3, 2, 1]},
    {"name": "conv3 16x16x32 -> 64, 3x3 s1 p1", "kind": "conv",
     "shape": [16, 16, 32, 64, 3, 1, 1]},
    {"name": "conv4 16x16x64 -> 64, 1x1", "kind": "conv", "shape": [16, 16, 64, 64, 1, 1, 0]},
]


def run_accel(args):
    import json

    from octet.config import AcceleratorConfig

    from .bench_sim import run_bench_module

    config = AcceleratorConfig(mem_bytes=1 << 23)
    results, wall = run_bench_module(config, "octet.sim.bench_accel",
                                     {"OCTET_BENCH_JOBS": json.dumps(ACCEL_JOBS)}, "bench")
    bus = config.bus_bytes
    rows = []
    total_cycles = 0
    for r in results:
        c = r["counters"]
        total_cycles += c["cycles"]
        moved = c["bytes_read"] + c["bytes_written"]
        rows.append((r["name"], c["cycles"], f"{r['ideal_cycles']:.0f}",
                     f"{r['ideal_cycles'] / c['cycles']:.1%}",
                     f"{c['compute_cycles'] / c['cycles']:.1%}", moved,
                     f"{moved / (c['cycles'] * bus):.1%}", f"{r['wall_s']:.1f}",
                     "yes" if r["exact"] else "NO"))
    gemm = results[0]["counters"]
    gemv = results[1]["counters"]
    util = results[0]["ideal_cycles"] / gemm["cycles"]
    bw = (gemv["bytes_read"] + gemv["bytes_written"]) / (gemv["cycles"] * bus)
    body = "\n\n".join([
        "## Full accelerator (fetch, DMA, scratchpads, array, store)",
        f"Measured by `make bench` (`octet bench accel`) on {platform.machine()}, "
        f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}. Default configuration: 8x8 "
        f"array, {config.input_rows}-row input and weight scratchpads, {config.acc_rows}-row "
        f"accumulator, {bus * 8}-bit AXI bus, device memory inside the design (8-cycle read "
        "latency). Programs come from the host compiler; every result is checked against "
        "NumPy. Cycles are the accelerator's CYCLES counter.",
        markdown_table(["workload", "cycles", "ideal (MACs/64)", "utilization",
                        "array busy", "DRAM bytes", "bus bandwidth used", "wall s",
                        "exact"], rows),
        f"Goals: 256x256x256 GEMM utilization >= 90%: **{util:.1%}** "
        f"({'met' if util >= 0.9 else 'NOT met'}); decode GEMV bus bandwidth >= 80%: "
        f"**{bw:.1%}** ({'met' if bw >= 0.8 else 'NOT met'}).",
        f"Simulation speed: {total_cycles:,} cycles in {wall:.0f} s of wall time including "
        f"host-side memory transfers: {total_cycles / wall:,.0f} simulated cycles per second.",
    ])
    write_section(Path(args.output), "accel", body)
    print(f"wrote the 'accel' section of {args.output}")
    if args.json:
        print_json({"target": "accel", "results": results, "gemm_utilization": util,
                    "gemv_bandwidth_utilization": bw, "cycles_per_s": total_cycles / wall})


def run_decode(args):
    from octet.sim.bench_decode import NEW_TOKENS, PROMPT, ensure_model, run_decode_once

    print("bench: building (or finding) the Verilator model...", file=sys.stderr, flush=True)
    build_s = ensure_model()
    runs = []
    for backend, host_requant in (("golden", False), ("verilator", False),
                                  ("golden", True), ("verilator", True)):
        print(f"bench: octet run --backend {backend}"
              f"{' --host-requant' if host_requant else ''} ...", file=sys.stderr, flush=True)
        runs.append((backend, host_requant, run_decode_once(backend, host_requant)))
    golden, rtl = runs[0][2], runs[1][2]
    if rtl["tokens"] != golden["tokens"]:
        raise RuntimeError("the RTL generated other bytes than the golden model")
    roofline = rtl["roofline_cycles_per_token"]
    rows = []
    for backend, host_requant, r in runs:
        rows.append((
            ("golden cycle model" if backend == "golden" else "RTL (Verilator)")
            + (", `--host-requant`" if host_requant else ""),
            f"{r['ttft_cycles']:,}", f"{r['tpot_cycles']:,.0f}",
            f"**{r['roofline_fraction']:.1%}**", f"{r['tokens_per_s_at_clock']:,.0f}",
            f"{r['bytes_per_token']:,.0f}", f"{r['decode_utilization']:.1%}",
            f"{r['outer_wall_s']:.0f}", "yes" if r["tokens"] == golden["tokens"] else "NO"))
    frac, wall = rtl["roofline_fraction"], rtl["outer_wall_s"]
    body = "\n\n".join([
        "## Transformer decode: cycles per token against the roofline, Verilator wall time",
        f"Measured by `octet bench decode` on {platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other builds); {time.strftime('%Y-%m-%d')}. Each row is one "
        f"`octet run --prompt {PROMPT!r} --max-tokens {NEW_TOKENS} --json` (greedy; the "
        "shipped W8A8 model, default 8x8 configuration, 64-bit bus), timed from outside. "
        "Time per output token is the mean over the decode steps (33 to 95 keys); cycles "
        "come from the cycle model (golden) or the accelerator's CYCLES counter (RTL).",
        f"Roofline: decoding streams every weight once per token: {rtl['weight_bytes']:,} "
        f"weight bytes / {rtl['bus_bytes']} bus bytes per cycle = **{roofline:,.0f} cycles "
        "per token**.",
        markdown_table(["backend", "time to first token (cycles)", "time per output token "
                        "(cycles)", "fraction of the roofline", "tokens/s at 100 MHz",
                        "device bytes per token", "array busy (decode)", "wall s",
                        "same bytes as golden"], rows),
        f"Goals: >= 80% of the roofline in cycles per token on the RTL: **{frac:.1%}** "
        f"({'met' if frac >= 0.8 else 'NOT met'}); 32 + 64 on the Verilator backend in at "
        f"most 120 s of wall time: **{wall:.0f} s** ({'met' if wall <= 120 else 'NOT met'}; "
        f"with the Verilator model built: finding or building it took {build_s:.0f} s before "
        "the runs).",
    ])
    write_section(Path(args.output), "decode", body)
    print(f"wrote the 'decode' section of {args.output}")
    if args.json:
        print_json({"target": "decode", "roofline_cycles_per_token": roofline,
                    "runs": [{"backend": b, "host_requant": h,
                              **{k: r[k] for k in ("ttft_cycles", "tpot_cycles",
                                                   "roofline_fraction", "bytes_per_token",
                                                   "outer_wall_s", "wall_s")}}
                             for b, h, r in runs]})


def run(args):
    if args.target == "decode":
        return run_decode(args)
    if args.target == "accel":
        return run_accel(args)
    if args.target == "kv":
        from .bench_kv import run_kv
        return run_kv(args)
    from octet.host.backend import GemmResult
    from octet.host.verilator_backend import VerilatorBackend
    from octet.sim import golden

    sizes = _parse_sizes(args.sizes)
    build_rows = []
    for r, c in sizes:
        print(f"bench: cold Verilator build of the {r}x{c} core...", file=sys.stderr,
              flush=True)
        build_rows.append((f"{r}x{c}", f"{_cold_build_seconds(r, c):.1f}"))

    rng = np.random.default_rng(0)
    backend = VerilatorBackend(8, 8, progress=False)
    gemm_rows, results = [], []
    for m, k, n in GEMM_SHAPES:
        print(f"bench: {m}x{k}x{n} GEMM on the 8x8 RTL...", file=sys.stderr, flush=True)
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        start = time.monotonic()
        res = backend.gemm(a, b)
        wall = time.monotonic() - start
        exact = np.array_equal(res.output, golden.matmul_int32(a, b))
        ideal = GemmResult.ideal_cycles(m, k, n, 8, 8)
        model = golden.array_cycles(m, k, n, 8, 8)
        results.append({"m": m, "k": k, "n": n, "cycles": res.gemm_cycles,
                        "ideal_cycles": ideal, "model_cycles": model,
                        "utilization": ideal / res.gemm_cycles, "wall_s": wall,
                        "cycles_per_s": res.gemm_cycles / wall, "exact": exact})
        gemm_rows.append((f"{m}x{k}x{n}", res.gemm_cycles, f"{ideal:.0f}", model,
                          f"{ideal / res.gemm_cycles:.1%}", f"{wall:.1f}",
                          f"{res.gemm_cycles / wall:,.0f}", "yes" if exact else "NO"))

    body = "\n\n".join([
        "## Compute core (array + requantizer), host-tiled GEMM",
        f"Measured by `make bench` (`octet bench core`) on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}.",
        "### Verilator build time (cold, fresh cache)",
        markdown_table(["array", "build seconds"], build_rows),
        "### GEMM on the 8x8 array (Verilator RTL, cocotb driver)",
        "Cycles run from the first beat offered to the last result taken. Ideal = "
        "M*K*N/(R*C). The cycle model is `octet.sim.golden.array_cycles`. Cycles/s counts "
        "simulated clock cycles per wall second, including the Python stream drivers and "
        "simulator start-up.",
        markdown_table(["M x K x N", "RTL cycles", "ideal", "cycle model", "utilization",
                        "wall s", "cycles/s", "exact"], gemm_rows),
    ])
    write_section(Path(args.output), "core", body)
    print(f"wrote the 'core' section of {args.output}")
    if args.json:
        print_json({"target": "core", "build_seconds": dict(build_rows), "gemm": results})
