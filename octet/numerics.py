"""The numeric contract of Octet, defined once.

Everything that fixes a number format lives here: operand and accumulator widths, the legal
range of requantization parameters, and the container that carries per-channel parameters.
The RTL (``octet.hdl``) takes its port widths from these constants, the NumPy golden model
(``octet.sim.golden``) implements the arithmetic, and the host validates user input with
:meth:`RequantParams.validate`. ``docs/numerics.md`` explains the semantics.
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "INT8_MIN", "INT8_MAX", "INT32_MIN", "INT32_MAX",
    "OPERAND_BITS", "ACC_BITS", "MULTIPLIER_BITS", "SHIFT_BITS", "SHIFT_MIN", "SHIFT_MAX",
    "MAX_EXACT_K", "REQUANT_STAGES", "RequantParams", "NumericsError",
]

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

#: Width of activations and weights.
OPERAND_BITS = 8
#: Width of the accumulator (and of the array's output, sign-extended).
ACC_BITS = 32
#: Width of the per-channel fixed-point multiplier (TFLite's ``quantized_multiplier``).
MULTIPLIER_BITS = 32
#: Width of the per-channel shift field (two's complement).
SHIFT_BITS = 6
#: TFLite's sign convention: positive shifts left, negative shifts right. A left shift of 31
#: would compute ``x * (1 << 31)``, which overflows int32 in TFLite itself, so it is excluded.
SHIFT_MIN, SHIFT_MAX = -31, 30
#: Largest reduction length for which an int32 accumulator can never wrap: every product is at
#: most 128 * 128 = 2**14 in magnitude, and 2**17 of them sum to at most 2**31.
MAX_EXACT_K = 2**31 // 2**14 - 1

#: Pipeline depth of the requantizer; the RTL is built with it and the golden cycle model
#: counts with it.
REQUANT_STAGES = 9


class NumericsError(ValueError):
    """A value lies outside the numeric contract (wrong dtype, shape or range)."""


@dataclass(frozen=True)
class RequantParams:
    """Per-output-channel requantization parameters, TFLite style.

    Parameters
    ----------
    multiplier : numpy.ndarray of int32, shape (N,)
        Fixed-point multipliers (Q0.31).
    shift : numpy.ndarray of int32, shape (N,)
        Shifts, positive left, in ``[SHIFT_MIN, SHIFT_MAX]``.
    bias : numpy.ndarray of int32, shape (N,)
        Added to the int32 accumulator before scaling.
    zero_point : int
        Output zero point in ``[-128, 127]``, added after scaling.
    relu : bool
        Clamp at the zero point from below (ReLU in the quantized domain).
    """

    multiplier: np.ndarray
    shift: np.ndarray
    bias: np.ndarray
    zero_point: int = 0
    relu: bool = False

    @classmethod
    def create(cls, multiplier, shift, bias=None, zero_point=0, relu=False):
        """Build and validate parameters from array-likes; ``bias`` defaults to zeros."""
        multiplier = _as_int32_vector("multiplier", multiplier)
        shift = _as_int32_vector("shift", shift)
        bias = (np.zeros_like(multiplier) if bias is None
                else _as_int32_vector("bias", bias))
        if isinstance(zero_point, float) or not float(zero_point).is_integer():
            raise NumericsError(f"requant zero_point must be an integer, not {zero_point!r}")
        params = cls(multiplier, shift, bias, int(zero_point), bool(relu))
        params.validate()
        return params

    @property
    def channels(self):
        return len(self.multiplier)

    def validate(self, channels=None):
        """Raise :class:`NumericsError` naming the first field that breaks the contract."""
        n = len(self.multiplier)
        for name in ("shift", "bias"):
            if len(getattr(self, name)) != n:
                raise NumericsError(
                    f"requant {name} has {len(getattr(self, name))} channels but multiplier "
                    f"has {n}")
        if channels is not None and n != channels:
            raise NumericsError(
                f"requant parameters have {n} channels but the output has {channels}")
        bad = (self.shift < SHIFT_MIN) | (self.shift > SHIFT_MAX)
        if bad.any():
            i = int(np.argmax(bad))
            raise NumericsError(
                f"requant shift[{i}] = {int(self.shift[i])} is outside "
                f"[{SHIFT_MIN}, {SHIFT_MAX}]")
        if not INT8_MIN <= self.zero_point <= INT8_MAX:
            raise NumericsError(
                f"requant zero_point {self.zero_point} is outside [{INT8_MIN}, {INT8_MAX}]")

    def channel(self, i):
        """Parameters of channel ``i`` as plain ints (multiplier, shift, bias)."""
        return int(self.multiplier[i]), int(self.shift[i]), int(self.bias[i])


def _as_int32_vector(name, value):
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise NumericsError(f"requant {name} must be a 1-D vector, not shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise NumericsError(f"requant {name} must be integer, not {arr.dtype}")
    if arr.size and (arr.min() < INT32_MIN or arr.max() > INT32_MAX):
        raise NumericsError(f"requant {name} has values outside int32")
    return arr.astype(np.int32)
