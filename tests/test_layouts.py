"""Tests of the stream payload layouts and their flat packing (``octet.hdl.layouts``, whose
``pack_fields`` / ``unpack_fields`` come from ``octet.bitfields``).

``pack_fields`` / ``unpack_fields`` are what the cocotb drivers use to talk to the flat Verilog
vectors, so their bit positions must be Amaranth's own. Reference: Amaranth itself,
``layout.const(...).as_value().value`` to pack and ``data.Const(layout, word)`` to unpack,
checked for every layout function at several widths with random and extreme leaf values.
"""

import re

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib import data

from octet.bitfields import field_names
from octet.hdl import layouts
from octet.numerics import ACC_BITS, MULTIPLIER_BITS, OPERAND_BITS, SHIFT_BITS

WIDTHS = [1, 2, 3, 8]
LAYOUTS = ([(f"weight_row_layout({n})", layouts.weight_row_layout(n)) for n in WIDTHS]
           + [(f"activation_layout({n})", layouts.activation_layout(n)) for n in WIDTHS]
           + [(f"accumulator_layout({n})", layouts.accumulator_layout(n)) for n in WIDTHS]
           + [(f"int8_row_layout({n})", layouts.int8_row_layout(n)) for n in WIDTHS]
           + [("requant_param_layout()", layouts.requant_param_layout())])
IDS = [name for name, _ in LAYOUTS]
LAYOUTS = [layout for _, layout in LAYOUTS]


def leaves(layout, prefix=""):
    """(name, shape) of every leaf, from Amaranth's layout description (not octet's code)."""
    for key, field in layout:
        if isinstance(field.shape, data.Layout):
            yield from leaves(field.shape, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", Shape.cast(field.shape)


def leaf_range(shape):
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def nested(layout, flat, prefix=""):
    """Flat leaf dict -> the nested dict/list that ``layout.const`` takes."""
    out = {}
    for key, field in layout:
        name = f"{prefix}{key}"
        out[key] = (nested(field.shape, flat, f"{name}.")
                    if isinstance(field.shape, data.Layout) else flat[name])
    if isinstance(layout, data.ArrayLayout):
        return [out[i] for i in range(layout.length)]
    return out


def read_leaf(view, name):
    for part in name.split("."):
        view = view[int(part)] if part.isdigit() else getattr(view, part)
    return view


def random_values(rng, layout):
    values = {}
    for name, shape in leaves(layout):
        low, high = leaf_range(shape)
        values[name] = int(rng.choice([low, high, 0, -1 if shape.signed else 1,
                                       int(rng.integers(low, high, endpoint=True))]))
    return values


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_pack_matches_amaranth(layout, seed):
    """pack_fields gives the bits of Amaranth's own const; unpack_fields reads them back."""
    rng = np.random.default_rng(seed)
    for _ in range(50):
        values = random_values(rng, layout)
        word = layouts.pack_fields(layout, values)
        assert word == layout.const(nested(layout, values)).as_value().value
        assert layouts.unpack_fields(layout, word) == values
        view = data.Const(layout, word)
        for name, value in values.items():
            assert read_leaf(view, name) == value, name


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_unpack_any_word(layout, seed):
    """Any bit pattern unpacks to what Amaranth reads from it and packs back unchanged."""
    rng = np.random.default_rng(seed + 1)
    words = [0, (1 << layout.size) - 1] + [int.from_bytes(rng.bytes(40)) % (1 << layout.size)
                                           for _ in range(50)]
    for word in words:
        values = layouts.unpack_fields(layout, word)
        view = data.Const(layout, word)
        assert values == {name: read_leaf(view, name) for name, _ in leaves(layout)}
        assert layouts.pack_fields(layout, values) == word


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_signed_leaves_and_leaf_names(layout):
    """All-ones: signed leaves read -1, one-bit flags read 1; names are in bit order."""
    values = layouts.unpack_fields(layout, (1 << layout.size) - 1)
    expect = {name: -1 if shape.signed else (1 << shape.width) - 1
              for name, shape in leaves(layout)}
    assert values == expect
    assert list(values) == [name for name, _ in leaves(layout)]


def test_sizes_and_names():
    """The widths the RTL ports and the cocotb drivers rely on."""
    assert layouts.weight_row_layout(4).size == 4 * OPERAND_BITS
    assert layouts.activation_layout(3).size == 3 * OPERAND_BITS + 1
    assert layouts.accumulator_layout(5).size == 5 * ACC_BITS + 1
    assert layouts.int8_row_layout(2).size == 2 * OPERAND_BITS + 1
    assert layouts.requant_param_layout().size == \
        MULTIPLIER_BITS + SHIFT_BITS + ACC_BITS + OPERAND_BITS + 1
    names = list(layouts.unpack_fields(layouts.activation_layout(2), 0))
    assert names == ["data.0", "data.1", "last"]
    assert list(layouts.unpack_fields(layouts.weight_row_layout(2), 0)) == ["0", "1"]


def test_pack_masks_each_field():
    """Out-of-range values are truncated to their field and never spill into a neighbour;
    missing leaves are zero."""
    layout = layouts.activation_layout(3)
    word = layouts.pack_fields(layout, {"data.1": 0x1FF, "last": 3})
    assert word == (0xFF << 8) | (1 << 24)
    assert layouts.unpack_fields(layout, word) == {"data.0": 0, "data.1": -1, "data.2": 0,
                                                   "last": 1}
    word = layouts.pack_fields(layouts.requant_param_layout(), {"shift": 64 + 5, "relu": 1})
    assert word == (5 << MULTIPLIER_BITS) | (1 << 78)


@pytest.mark.parametrize("func,label", [
    (layouts.weight_row_layout, "Weight row width"),
    (layouts.activation_layout, "Activation width"),
    (layouts.accumulator_layout, "Accumulator row width"),
    (layouts.int8_row_layout, "Output row width"),
])
@pytest.mark.parametrize("bad", [0, -3, 2.0, True, None])
def test_width_checks(func, label, bad):
    with pytest.raises(TypeError,
                       match=re.escape(f"{label} must be a positive integer, not {bad!r}")):
        func(bad)


def test_field_names_in_bit_order():
    for layout in LAYOUTS:
        assert field_names(layout) == [name for name, _ in leaves(layout)]


def test_strict_packing_rejects_typos_and_overflow():
    """``strict=True`` (what drivers should use) turns silent truncation into errors."""
    layout = layouts.activation_layout(2)
    assert layouts.pack_fields(layout, {"dat.0": 5}) == 0  # non-strict: a typo is ignored
    with pytest.raises(ValueError, match=re.escape("unknown field(s): dat.0")):
        layouts.pack_fields(layout, {"dat.0": 5}, strict=True)
    with pytest.raises(ValueError, match=re.escape("field data.1 = 128 does not fit in "
                                                   "signed(8)")):
        layouts.pack_fields(layout, {"data.1": 128}, strict=True)
    with pytest.raises(ValueError, match=re.escape("field last = 2 does not fit in "
                                                   "unsigned(1)")):
        layouts.pack_fields(layout, {"last": 2}, strict=True)
    values = {"data.0": -128, "data.1": 127, "last": 1}
    assert layouts.unpack_fields(layout, layouts.pack_fields(layout, values, strict=True)) \
        == values
