"""Compute-core backends: host-tiled operations on the array + requantizer core alone.

A backend runs whole operations of the compute core (``octet.hdl.compute_core``): a
host-tiled GEMM (tiles from :mod:`octet.host.tiling`) and a requantization pass. Its one
implementation, :class:`~octet.host.verilator_backend.VerilatorBackend`, runs them on the RTL
of the core; ``octet bench core`` measures the core with it. Operations on the whole
accelerator go through :mod:`octet.host.devices` instead.
"""

from dataclasses import dataclass

import numpy as np

from octet.numerics import RequantParams

from .devices import MAX_ARRAY_DIM
from .tiling import check_gemm_operands

__all__ = ["BackendError", "GemmResult", "Backend", "check_array_size"]


class BackendError(RuntimeError):
    """A backend could not run an operation; the message says why."""


@dataclass
class GemmResult:
    """Output and cost of one GEMM (optionally requantized)."""

    output: np.ndarray
    cycles: int
    gemm_cycles: int
    requant_cycles: int

    @staticmethod
    def ideal_cycles(m, k, n, rows, cols):
        return m * k * n / (rows * cols)


def check_array_size(rows, cols):
    """Raise ValueError naming the bad dimension unless 1 <= rows, cols <= 64."""
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"array {name} must be a positive integer, not {value!r}")
        if value > MAX_ARRAY_DIM:
            raise ValueError(f"array {name} must be at most {MAX_ARRAY_DIM}, not {value}")


class Backend:
    """Interface of a compute backend for an R x C array.

    Subclasses implement :meth:`_run` (GEMM, then requantization when asked); :meth:`gemm`
    checks the operands first.
    """

    name = None

    def __init__(self, rows=8, cols=8):
        check_array_size(rows, cols)
        self.rows = rows
        self.cols = cols

    def gemm(self, a, b, requant: RequantParams | None = None) -> GemmResult:
        """A int8 (M, K) @ B int8 (K, N): int32 (M, N), or int8 when ``requant`` is given."""
        check_gemm_operands(a, b)
        if requant is not None:
            requant.validate(channels=b.shape[1])
        out, gemm_cycles, rq_cycles = self._run(a, b, requant)
        return GemmResult(out, gemm_cycles + rq_cycles, gemm_cycles, rq_cycles)

    def _run(self, a, b, requant):  # pragma: no cover - interface
        raise NotImplementedError

    def close(self):
        """Release resources (simulators, ports)."""
