"""Running a benchmark's cocotb module on the accelerator with its memory inside the design.

The ``octet bench`` targets that measure the whole accelerator (``accel``, ``kv``) build the
fast simulation model of a configuration, run one module of ``octet.sim`` on it with the
configuration and the module's settings in the environment, and read back the JSON the module
writes to ``$OCTET_BENCH_OUT``.
"""

import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

__all__ = ["run_bench_module"]


def run_bench_module(config, module, env, what):
    """``(results, wall seconds)`` of cocotb ``module`` on ``config``'s fast model.

    ``env`` holds the module's own settings; ``what`` names the benchmark in messages.
    Raises RuntimeError with the end of the simulator's log when no results were written.
    """
    from octet.hdl.accelerator_sim import build_sim_model

    print(f"{what}: building the {config.rows}x{config.cols} accelerator with in-design "
          "memory...", file=sys.stderr, flush=True)
    model = build_sim_model(config)
    with tempfile.TemporaryDirectory(prefix="octet-bench-") as tmp:
        out = Path(tmp) / "results.json"
        start = time.monotonic()
        model.run(module, test_dir=tmp, log_file=Path(tmp) / "sim.log",
                  extra_env={"OCTET_CONFIG": json.dumps(asdict(config)),
                             "OCTET_BENCH_OUT": str(out), **env})
        wall = time.monotonic() - start
        if not out.exists():
            log = (Path(tmp) / "sim.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the {what} simulation failed:\n{log}")
        return json.loads(out.read_text()), wall
