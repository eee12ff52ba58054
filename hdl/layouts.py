"""Payload layouts of the streams between Octet's blocks, defined once.

The RTL builds its stream signatures from these functions, the cocotb drivers pack and unpack
the flat Verilog vectors with :func:`pack_fields` / :func:`unpack_fields`, and the host uses
them through the drivers, so a field moved here moves everywhere.
"""

from amaranth.hdl import Shape, signed
from amaranth.lib import data

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


def _fields(layout, prefix=""):
    """Flatten a layout into (name, offset, width, signed) leaves, in bit order."""
    for key, field in layout:  # struct and array layouts both iterate as (key, Field)
        name = f"{prefix}{key}"
        if isinstance(field.shape, data.Layout):
            for sub_name, offset, width, is_signed in _fields(field.shape, f"{name}."):
                yield sub_name, field.offset + offset, width, is_signed
        else:
            shape = Shape.cast(field.shape)
            yield name, field.offset, shape.width, shape.signed


def pack_fields(layout, values):
    """Pack a dict of leaf names (``"data.3"``, ``"last"``) to ints into one integer."""
    word = 0
    for name, offset, width, _ in _fields(data.Layout.cast(layout)):
        word |= (int(values.get(name, 0)) & ((1 << width) - 1)) << offset
    return word


def unpack_fields(layout, word):
    """Inverse of :func:`pack_fields`: one integer to a dict of signed/unsigned leaf values."""
    out = {}
    for name, offset, width, is_signed in _fields(data.Layout.cast(layout)):
        v = (int(word) >> offset) & ((1 << width) - 1)
        if is_signed and v >> (width - 1):
            v -= 1 << width
        out[name] = v
    return out
