"""Division by a constant without a divider: a shift, or a product by an exact reciprocal.

A quotient by a configuration constant (the array's rows or columns) is needed by the
instruction checks. Yosys builds ``x // d`` for a ``d`` that is not a power of two as a real
divider, a long chain of subtractors; ``(x * m) >> s`` with a reciprocal ``m`` checked exact for
every ``width``-bit ``x`` is one multiplier.

Tested by ``tests/test_store_checks.py`` (the reciprocal search) and through the checks that
use it.
"""

__all__ = ["reciprocal", "floor_div_const"]


def reciprocal(divisor, width):
    """``(multiplier, shift)`` with ``(x * multiplier) >> shift == x // divisor`` for every
    ``width``-bit ``x`` (checked exhaustively)."""
    for shift in range(width, 2 * width + 2):
        multiplier = -(-(1 << shift) // divisor)
        if all((x * multiplier) >> shift == x // divisor for x in range(1 << width)):
            return multiplier, shift
    raise AssertionError(f"no reciprocal for {divisor}")


def floor_div_const(value, divisor, width):
    """``value // divisor`` for an Amaranth ``value`` of at most ``width`` bits and a positive
    integer ``divisor``: a shift for a power of two, else a reciprocal product."""
    if divisor & (divisor - 1) == 0:
        return value >> (divisor.bit_length() - 1)
    multiplier, shift = reciprocal(divisor, width)
    return (value * multiplier) >> shift
