"""Tests of the numeric contract's validation (``octet.numerics.RequantParams``).

Each way user input can break the contract must raise :class:`NumericsError` (a ValueError)
with a message naming the field; the tests assert the message text. The reference is the
contract itself: the constants of :mod:`octet.numerics`.
"""

import re

import numpy as np
import pytest

from octet.numerics import INT32_MAX, INT32_MIN, SHIFT_MAX, SHIFT_MIN, NumericsError, RequantParams


def test_create_valid_defaults():
    """Scalars become 1-element vectors, bias defaults to zeros, everything is int32."""
    p = RequantParams.create(2**30, -3)
    assert p.channels == 1
    assert p.multiplier.dtype == p.shift.dtype == p.bias.dtype == np.int32
    assert p.channel(0) == (2**30, -3, 0)
    assert (p.zero_point, p.relu) == (0, False)
    p = RequantParams.create([INT32_MIN, INT32_MAX], [SHIFT_MIN, SHIFT_MAX],
                             [INT32_MAX, INT32_MIN], zero_point=-128, relu=1)
    assert p.channel(1) == (INT32_MAX, SHIFT_MAX, INT32_MIN)
    assert p.relu is True and p.zero_point == -128
    assert RequantParams.create([1], [0], zero_point=127).zero_point == 127


def test_error_is_value_error():
    assert issubclass(NumericsError, ValueError)


@pytest.mark.parametrize("shift,index", [([0, SHIFT_MAX + 1], 1), ([SHIFT_MIN - 1, 0], 0),
                                         ([0, 5, -40], 2)])
def test_shift_out_of_range(shift, index):
    msg = re.escape(f"requant shift[{index}] = {shift[index]} is outside "
                    f"[{SHIFT_MIN}, {SHIFT_MAX}]")
    with pytest.raises(NumericsError, match=msg):
        RequantParams.create([1] * len(shift), shift)


def test_shift_reports_first_bad_channel():
    with pytest.raises(NumericsError, match=re.escape("shift[1] = 31 is outside [-31, 30]")):
        RequantParams.create([1, 1, 1], [0, 31, -32])


@pytest.mark.parametrize("zp", [128, -129, 1000])
def test_zero_point_out_of_range(zp):
    msg = re.escape(f"requant zero_point {zp} is outside [-128, 127]")
    with pytest.raises(NumericsError, match=msg):
        RequantParams.create([1], [0], zero_point=zp)


def test_channel_count_mismatch_between_fields():
    with pytest.raises(NumericsError,
                       match="requant shift has 2 channels but multiplier has 3"):
        RequantParams.create([1, 2, 3], [0, 0])
    with pytest.raises(NumericsError,
                       match="requant bias has 4 channels but multiplier has 3"):
        RequantParams.create([1, 2, 3], [0, 0, 0], [0, 0, 0, 0])


def test_channel_count_mismatch_with_output():
    p = RequantParams.create([1, 2, 3], [0, 0, 0])
    p.validate(channels=3)
    with pytest.raises(NumericsError,
                       match="requant parameters have 3 channels but the output has 5"):
        p.validate(channels=5)


@pytest.mark.parametrize("field", ["multiplier", "shift", "bias"])
def test_non_integer_dtype(field):
    args = {"multiplier": [1, 2], "shift": [0, 0], "bias": [0, 0]}
    args[field] = np.array([1.0, 2.0])
    with pytest.raises(NumericsError, match=f"requant {field} must be integer, not float64"):
        RequantParams.create(**args)


def test_bool_and_object_dtypes_rejected():
    with pytest.raises(NumericsError, match="requant multiplier must be integer, not bool"):
        RequantParams.create(np.array([True]), [0])
    with pytest.raises(NumericsError, match="requant bias must be integer, not object"):
        RequantParams.create([1], [0], np.array([None], dtype=object))


@pytest.mark.parametrize("field", ["multiplier", "shift", "bias"])
def test_two_dimensional_input(field):
    args = {"multiplier": [1, 2], "shift": [0, 0], "bias": [0, 0]}
    args[field] = np.zeros((1, 2), dtype=np.int32)
    msg = re.escape(f"requant {field} must be a 1-D vector, not shape (1, 2)")
    with pytest.raises(NumericsError, match=msg):
        RequantParams.create(**args)


@pytest.mark.parametrize("value", [INT32_MAX + 1, INT32_MIN - 1, 2**40])
@pytest.mark.parametrize("field", ["multiplier", "shift", "bias"])
def test_values_outside_int32(field, value):
    args = {"multiplier": [1, 2], "shift": [0, 0], "bias": [0, 0]}
    args[field] = np.array([0, value], dtype=np.int64)
    with pytest.raises(NumericsError, match=f"requant {field} has values outside int32"):
        RequantParams.create(**args)


def test_python_int_outside_int32():
    """Plain Python lists too: no silent wrap when converting to int32."""
    with pytest.raises(NumericsError, match="requant bias has values outside int32"):
        RequantParams.create([1], [0], [2**31])
