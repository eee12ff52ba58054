"""cocotb module behind ``octet bench accel``: workloads on the accelerator RTL.

Runs on ``AcceleratorWithMemory`` (device memory inside the design) through the ordinary host
runtime (:mod:`octet.host.compiler`) and :class:`~octet.sim.fast_device.FastVerilatorDevice`;
every result is checked against the NumPy reference. Workloads come from ``$OCTET_BENCH_JOBS``
(JSON list) and the measurements go to ``$OCTET_BENCH_OUT`` (JSON).
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.task import bridge

from octet.config import AcceleratorConfig
from octet.host import compiler
from octet.sim import golden
from octet.sim.fast_device import start_fast_device


def conv_reference(x, w, stride, padding):
    """int64 NHWC convolution, (H, W, C) x (KH, KW, C, O)."""
    x = np.pad(x.astype(np.int64), ((padding, padding), (padding, padding), (0, 0)))
    kh, kw, _, o = w.shape
    oh = (x.shape[0] - kh) // stride + 1
    ow = (x.shape[1] - kw) // stride + 1
    out = np.zeros((oh, ow, o), np.int64)
    for dy in range(kh):
        for dx in range(kw):
            patch = x[dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
            out += patch @ w[dy, dx].astype(np.int64)
    return out


def _run_job(device, job, rng):
    if job["kind"] == "gemm":
        m, k, n = job["shape"]
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        out, stats = compiler.run_gemm(device, a, b)
        exact = np.array_equal(out, golden.matmul_int32(a, b))
    else:
        h, w, c, o, kh, stride, pad = job["shape"]
        x = rng.integers(-128, 128, (h, w, c), dtype=np.int8)
        wt = rng.integers(-128, 128, (kh, kh, c, o), dtype=np.int8)
        out, stats = compiler.run_conv2d(device, x, wt, stride, pad)
        exact = np.array_equal(np.asarray(out).reshape(-1), conv_reference(x, wt, stride,
                                                                           pad).reshape(-1))
    return {**job, "counters": stats.counters, "ideal_cycles": stats.ideal_cycles,
            "exact": bool(exact), "fallback": getattr(stats, "fallback", None)}


@cocotb.test()
async def bench(dut):
    """Run every job, time it, write the results."""
    config = AcceleratorConfig(**json.loads(os.environ["OCTET_CONFIG"]))
    jobs = json.loads(os.environ["OCTET_BENCH_JOBS"])
    device = await start_fast_device(dut, config)

    def host():
        rng = np.random.default_rng(0)
        results = []
        for job in jobs:
            start = time.monotonic()
            result = _run_job(device, job, rng)
            result["wall_s"] = time.monotonic() - start
            results.append(result)
            print(f"bench: {job['name']}: {result['counters']['cycles']} cycles, "
                  f"{result['wall_s']:.1f} s", flush=True)
        return results

    results = await bridge(host)()
    with open(os.environ["OCTET_BENCH_OUT"], "w") as handle:
        json.dump(results, handle)
