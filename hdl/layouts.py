"""Payload layouts of the streams between Octet's blocks, defined once.

The RTL builds its stream signatures from these functions, the cocotb drivers pack and unpack
the flat Verilog vectors with :func:`pack_fields` / :func:`unpack_fields`, and the host uses
them through the drivers, so a field moved here moves everywhere.
"""

from amaranth.hdl import signed
from amaranth.lib import data

from octet.bitfields import pack_fields, unpack_fields
from octet.numerics import ACC_BITS, MULTIPLIER_BITS, OPERAND_BITS, SHIFT_BITS

__all__ = [
    "weight_row_layout", "activation_layout", "accumulator_layout", "requant_param_layout",
    "int8_row_layout", "pack_fields", "unpack_fields",
]


def _check_lanes(name, lanes):
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
        raise TypeError(f"{name} must be a positive integer, not {lanes!r}")


def weight_row_layout(cols):
    """One row of a weight tile: ``cols`` int8 values (row k of W[k0:k0+R, n0:n0+C])."""
    _check_lanes("Weight row width", cols)
    return data.ArrayLayout(signed(OPERAND_BITS), cols)


def activation_layout(rows):
    """One activation vector (row m of A[:, k0:k0+R]) and ``last``, closing its weight tile."""
    _check_lanes("Activation width", rows)
    return data.StructLayout({"data": data.ArrayLayout(signed(OPERAND_BITS), rows), "last": 1})


def accumulator_layout(cols):
    """One row of int32 results and ``last``, copied from the activation that produced it."""
    _check_lanes("Accumulator row width", cols)
    return data.StructLayout({"data": data.ArrayLayout(signed(ACC_BITS), cols), "last": 1})


def int8_row_layout(cols):
    """One row of requantized int8 outputs and ``last``."""
    _check_lanes("Output row width", cols)
    return data.StructLayout({"data": data.ArrayLayout(signed(OPERAND_BITS), cols), "last": 1})


def requant_param_layout():
    """Parameters of one output channel, loaded one channel per beat (channel 0 first)."""
    return data.StructLayout({
        "multiplier": signed(MULTIPLIER_BITS),
        "shift": signed(SHIFT_BITS),
        "bias": signed(ACC_BITS),
        "zero_point": signed(OPERAND_BITS),
        "relu": 1,
    })
