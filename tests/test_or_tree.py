"""``or_tree``: the OR of its values, as a tree (checked against Python's own OR)."""

import pytest
from amaranth.hdl import Const, Signal

from octet.hdl.or_tree import or_tree


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_or_of_ints(n):
    values = [1 << (3 * i % 17) for i in range(n)]
    expected = 0
    for v in values:
        expected |= v
    assert or_tree(values) == expected


def test_depth_is_logarithmic():
    sigs = [Signal(4, name=f"s{i}") for i in range(16)]
    tree = or_tree(sigs)

    def depth(v):
        ops = getattr(v, "operands", None)
        return 1 + max(depth(o) for o in ops) if ops else 0

    assert depth(tree) == 4


def test_single_value_is_returned_as_is():
    c = Const(5, 4)
    assert or_tree([c]) is c


def test_empty_is_refused():
    with pytest.raises(ValueError, match="at least one value"):
        or_tree([])
