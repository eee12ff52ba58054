"""Packing Python values into the bit layout of an Amaranth ``lib.data`` layout and back.

The layouts (stream payloads in :mod:`octet.hdl.layouts`, instructions in :mod:`octet.isa`)
are the single definition of every field's position; software that builds or parses those
bits (cocotb drivers, the golden model, the host) goes through these two functions.
Leaves are named by their path: ``"data.3"``, ``"header.opcode"``.
"""

import enum

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack_fields", "unpack_fields", "field_names"]


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


def field_names(layout):
    """Leaf names of a layout, in bit order."""
    return [name for name, *_ in _fields(data.Layout.cast(layout))]


def pack_fields(layout, values, strict=False):
    """Pack a dict of leaf names to ints (or enum members) into one integer.

    With ``strict``, unknown names and values that do not fit their field raise ValueError.
    """
    layout = data.Layout.cast(layout)
    word = 0
    known = set()
    for name, offset, width, is_signed in _fields(layout):
        known.add(name)
        value = values.get(name, 0)
        if isinstance(value, enum.Enum):
            value = value.value
        value = int(value)
        if strict:
            lo, hi = ((-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed
                      else (0, (1 << width) - 1))
            if not lo <= value <= hi:
                raise ValueError(f"field {name} = {value} does not fit in "
                                 f"{'signed' if is_signed else 'unsigned'}({width})")
        word |= (value & ((1 << width) - 1)) << offset
    if strict:
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
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
