"""``octet bench``: measure the design and write the tables in docs/benchmarks.md.

``core``: Verilator build time of the compute core per array size (a cold build in a fresh
cache), simulated cycles per wall second, and GEMM cycles against the ideal M*K*N/(R*C) on the
RTL for several shapes.
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
    p.add_argument("target", choices=["core"], help="what to measure")
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


def run(args):
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
