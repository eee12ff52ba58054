"""The Verilator backend: operations run on the RTL of the compute core.

The host process writes the operands to a job file, and a cocotb test module
(:mod:`octet.sim.job_core`) running inside the Verilator simulation executes the job with
:class:`octet.sim.core_driver.CoreDriver`, the same tiling the golden backend uses, and writes
the results back. The compiled model is cached (:mod:`octet.sim.verilator_build`).
"""

import sys
import tempfile
from contextlib import suppress
from pathlib import Path

import numpy as np

from octet.hdl.compute_core import ComputeCore
from octet.sim.verilator_build import build_model

from .backend import Backend, BackendError

__all__ = ["VerilatorBackend"]


class VerilatorBackend(Backend):
    """Runs GEMMs and requantization on the Verilator model of ``ComputeCore(rows, cols)``."""

    name = "verilator"

    def __init__(self, rows=8, cols=8, progress=True):
        super().__init__(rows, cols)
        self._progress = progress
        self._model = build_model(ComputeCore(rows, cols), "octet_core", progress=progress)

    def _run(self, a, b, requant):
        with tempfile.TemporaryDirectory(prefix="octet-job-") as tmp:
            tmp = Path(tmp)
            job = {"a": a, "b": b}
            if requant is not None:
                job.update(multiplier=requant.multiplier, shift=requant.shift,
                           bias=requant.bias, zero_point=requant.zero_point,
                           relu=requant.relu)
            np.savez(tmp / "job.npz", **job)
            if self._progress:
                m, k = a.shape
                print(f"octet: simulating {m}x{k}x{b.shape[1]} GEMM on the "
                      f"{self.rows}x{self.cols} array in Verilator", file=sys.stderr,
                      flush=True)
            log = tmp / "sim.log"
            # A failed run is reported below from the result file's absence.
            with suppress(SystemExit):
                self._model.run("octet.sim.job_core", test_dir=tmp, log_file=log,
                                extra_env={"OCTET_JOB": str(tmp / "job.npz"),
                                           "OCTET_RESULT": str(tmp / "result.npz")})
            result = tmp / "result.npz"
            if not result.exists():
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise BackendError(f"the Verilator simulation did not finish the job:\n{tail}")
            with np.load(result) as r:
                return r["out"], int(r["gemm_cycles"]), int(r["requant_cycles"])
