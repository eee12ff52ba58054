"""Host-side tiling of an int8 GEMM onto an R x C weight-stationary array.

The array computes one R x C weight tile against a stream of activation rows. A GEMM
A (M, K) x B (K, N) becomes ceil(K/R) * ceil(N/C) tiles, N-tile outer and K-tile inner; each
tile's partial result (M, C) is added into the int32 output, wrapping like the hardware's
accumulator. Edge tiles are zero-padded, which adds nothing to the sums.

The compute-core driver (``octet.sim.core_driver``, behind the compute-core Verilator backend)
consumes the tile sequence of :func:`gemm_tiles`; :func:`check_gemm_operands` is shared by
every host path.
"""

from dataclasses import dataclass

import numpy as np

from octet.numerics import MAX_EXACT_K

__all__ = ["OperandError", "Tile", "check_gemm_operands", "gemm_tiles", "accumulate_tile"]


class OperandError(ValueError):
    """GEMM operands with the wrong dtype, rank or shapes; the message names the operand."""


@dataclass(frozen=True)
class Tile:
    """One weight tile: B[k0:k0+R, n0:n0+C] and the activations A[:, k0:k0+R], zero-padded."""

    k0: int
    n0: int
    weights: np.ndarray      # (R, C) int8
    activations: np.ndarray  # (M, R) int8
    n_valid: int             # columns of this tile inside N


def check_gemm_operands(a, b):
    """Raise :class:`OperandError` unless A is int8 (M, K) and B is int8 (K, N)."""
    for name, x in (("A", a), ("B", b)):
        if not isinstance(x, np.ndarray):
            raise OperandError(f"{name} must be a NumPy array, not {type(x).__name__}")
        if x.dtype != np.int8:
            raise OperandError(f"{name} must have dtype int8, not {x.dtype}")
        if x.ndim != 2:
            raise OperandError(f"{name} must be 2-D, not {x.ndim}-D with shape {x.shape}")
        if 0 in x.shape:
            raise OperandError(f"{name} must not be empty, but has shape {x.shape}")
    if a.shape[1] != b.shape[0]:
        raise OperandError(f"inner dimensions differ: A is {a.shape} (K = {a.shape[1]}) but "
                           f"B is {b.shape} (K = {b.shape[0]})")
    if a.shape[1] > MAX_EXACT_K:
        raise OperandError(f"K = {a.shape[1]} exceeds {MAX_EXACT_K}: the int32 accumulator "
                           "could wrap")


def gemm_tiles(a, b, rows, cols):
    """Yield the :class:`Tile` sequence of A @ B for an R x C array."""
    m, k = a.shape
    n = b.shape[1]
    for n0 in range(0, n, cols):
        n_valid = min(cols, n - n0)
        for k0 in range(0, k, rows):
            k_valid = min(rows, k - k0)
            w = np.zeros((rows, cols), dtype=np.int8)
            w[:k_valid, :n_valid] = b[k0:k0 + k_valid, n0:n0 + n_valid]
            x = np.zeros((m, rows), dtype=np.int8)
            x[:, :k_valid] = a[:, k0:k0 + k_valid]
            yield Tile(k0, n0, w, x, n_valid)


def accumulate_tile(out, tile, partial):
    """Add a tile's (M, C) int32 partial result into ``out`` (M, N) int32, wrapping."""
    cols = slice(tile.n0, tile.n0 + tile.n_valid)
    acc = out[:, cols].astype(np.int64) + np.asarray(partial)[:, :tile.n_valid]
    out[:, cols] = (((acc + 2**31) & 0xFFFF_FFFF) - 2**31).astype(np.int32)
