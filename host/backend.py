"""Compute backends the host drives: one interface, golden and Verilator implementations.

A backend runs whole operations of the compute core: a host-tiled GEMM (tiles from
:mod:`octet.host.tiling`) and a requantization pass. :class:`GoldenBackend` computes with the
NumPy golden model and estimates cycles with its cycle model; the Verilator backend
(:mod:`octet.host.verilator_backend`) runs the same operations on the RTL. Callers use
:func:`make_backend` and never branch on the backend kind.
"""

from dataclasses import dataclass

import numpy as np

from octet.numerics import RequantParams
from octet.sim import golden

from .tiling import accumulate_tile, check_gemm_operands, gemm_tiles

__all__ = ["BackendError", "GemmResult", "Backend", "GoldenBackend", "make_backend",
           "BACKENDS", "check_array_size"]

BACKENDS = ("golden", "verilator")
MAX_ARRAY_DIM = 64


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

    Subclasses implement :meth:`_gemm` and :meth:`_requantize`; :meth:`gemm` checks the
    operands and chains the two.
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


class GoldenBackend(Backend):
    """The NumPy golden model, tile by tile, with the golden cycle model."""

    name = "golden"

    def _run(self, a, b, requant):
        out = np.zeros((a.shape[0], b.shape[1]), dtype=np.int32)
        for tile in gemm_tiles(a, b, self.rows, self.cols):
            accumulate_tile(out, tile, golden.matmul_int32(tile.activations, tile.weights))
        m, k = a.shape
        n = b.shape[1]
        gemm_cycles = golden.array_cycles(m, k, n, self.rows, self.cols)
        if requant is None:
            return out, gemm_cycles, 0
        return (golden.requantize(out, requant), gemm_cycles,
                golden.requant_cycles(m, n, self.cols))


def make_backend(name, rows=8, cols=8, progress=True):
    """Create the backend called ``name`` (one of :data:`BACKENDS`)."""
    if name == "golden":
        return GoldenBackend(rows, cols)
    if name == "verilator":
        from .verilator_backend import VerilatorBackend
        return VerilatorBackend(rows, cols, progress=progress)
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
