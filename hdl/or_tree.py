"""The OR of many values as a balanced tree of ``|`` (a chain would be as deep as it is long).

Tested by ``tests/test_or_tree.py``.
"""

__all__ = ["or_tree"]


def or_tree(values):
    """The OR of ``values`` (Amaranth values or ints), paired off level by level.

    Parameters
    ----------
    values : sequence
        At least one value.

    Returns
    -------
    The OR of all of them; the one value itself for a sequence of one.
    """
    values = list(values)
    if not values:
        raise ValueError("or_tree needs at least one value")
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]
