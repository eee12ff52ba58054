"""Floorplan of the board system on the ECP5-85F: block RAMs and DSPs pinned to chosen sites.

nextpnr's placer puts every cell, the block RAMs and DSP multipliers too, and on the 8x8
system its choice for those hard blocks differs from seed to seed: the device memory's 32 block
RAMs anywhere along one block-RAM row (76 columns), the requantizer's 32 multipliers spread
over all three DSP rows (48 rows apart), the accumulator wherever the rest left room. The
logic between them follows, so one netlist routed anywhere between 70 and 88 MHz
(docs/fpga.md). A floorplan fixes those blocks where the data flows: the accumulator's block
RAMs on the left, the requantizer's multipliers (each lane's four in one DSP block, the lanes in
order) in the middle, the device memory (its 2-bit slices in bit order) on the right, each
group in two rows, so that the store path runs left to right and no group spans more than 36
columns.

:func:`apply_floorplan` sets nextpnr's ``BEL`` attribute on those cells of a synthesized
netlist (Yosys's JSON, between synthesis and placement); nextpnr's placers treat such cells as
fixed. A group whose cells are not found as expected (another array size, another memory
mapping) is left to the placer, and the summary says so.

Tested by ``tests/test_fpga_floorplan.py``.
"""

import json
import re
from pathlib import Path

__all__ = ["BLOCK_COLUMNS", "FLOORPLANS", "apply_floorplan", "ebr_sites", "dsp_sites",
           "floorplan"]

#: The first column of each block-RAM / DSP block of the LFE5U-85F (nextpnr's X): a block RAM
#: block has EBR0-3 at x, x+2, x+4, x+6; a DSP block MULT18_0, _1, _4, _5 at x, x+1, x+4, x+5.
BLOCK_COLUMNS = (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114)
_EBR_ROWS = (22, 46, 70, 82)
_DSP_ROWS = (10, 34, 58)


def ebr_sites(rows, columns):
    """nextpnr's block-RAM sites (``X<x>/Y<y>/EBR<k>``) of the blocks at ``columns`` (first
    columns, from :data:`BLOCK_COLUMNS`) in each of ``rows``, row by row, left to right."""
    _check(rows, _EBR_ROWS, columns, "block-RAM")
    return [f"X{x + 2 * k}/Y{y}/EBR{k}" for y in rows for x in columns for k in range(4)]


def dsp_sites(rows, columns):
    """nextpnr's DSP multiplier sites (``X<x>/Y<y>/MULT18_<k>``), as :func:`ebr_sites`."""
    _check(rows, _DSP_ROWS, columns, "DSP")
    return [f"X{x + dx}/Y{y}/MULT18_{k}" for y in rows for x in columns
            for dx, k in ((0, 0), (1, 1), (4, 4), (5, 5))]


def _check(rows, valid_rows, columns, kind):
    for y in rows:
        if y not in valid_rows:
            raise ValueError(f"no {kind} row at Y{y} on the ECP5-85F (rows: "
                             f"{', '.join(map(str, valid_rows))})")
    for x in columns:
        if x not in BLOCK_COLUMNS:
            raise ValueError(f"no {kind} block starts at column X{x} on the ECP5-85F")


def _by_numbers(match):
    """Cells in the order of the numbers their name's pattern captures."""
    return tuple(int(g) for g in match.groups())


_HALVES = ("hh", "hl", "lh", "ll")


def _by_lane(match):
    """Requantizer products lane by lane, each lane's halves in :data:`_HALVES` order."""
    return int(match["lane"]), _HALVES.index(match["half"])


#: Board -> groups: (what, cell type, cell-name pattern, order of the cells (from the
#: pattern's match), sites). Cells are given the sites in that order.
FLOORPLANS = {
    "ulx3s-85f": (
        ("device memory", "DP16KD", r"soc\.memory\.ram\.(\d+)\.(\d+)", _by_numbers,
         ebr_sites((46, 70), (69, 78, 87, 96))),
        ("accumulator", "DP16KD", r"soc\.accel\.acc\.(\d+)\.(\d+)", _by_numbers,
         ebr_sites((46, 70), (22, 31))),
        # Each lane's four products in one DSP block.
        ("requantizer", "MULT18X18D",
         r"soc\.accel\.store\.row_path\.requant\.mul_(?P<half>hh|hl|lh|ll)_(?P<lane>\d+)\.dsp",
         _by_lane, dsp_sites((34, 58), (40, 49, 58, 69))),
    ),
}


def floorplan(board, cells):
    """Sites for ``cells`` (name -> nextpnr/Yosys cell type) on ``board``.

    Returns ``(sites, notes)``: ``{cell name: site}`` and one line per group saying what was
    pinned or why it was not (cells missing, or more than the group's sites).

    Raises
    ------
    ValueError
        ``board`` has no floorplan.
    """
    if board not in FLOORPLANS:
        raise ValueError(f"no floorplan for board {board!r}; boards with one: "
                         f"{', '.join(FLOORPLANS)}")
    sites, notes = {}, []
    for what, kind, pattern, order, group_sites in FLOORPLANS[board]:
        rx = re.compile(pattern)
        keyed = [(order(m), n) for n, t in cells.items() if t == kind and (m := rx.fullmatch(n))]
        found = [n for _, n in sorted(keyed)]
        if not found:
            notes.append(f"{what}: no {kind} cells, left to the placer")
        elif len(found) > len(group_sites):
            notes.append(f"{what}: {len(found)} {kind} cells, more than its "
                         f"{len(group_sites)} sites, left to the placer")
        else:
            sites.update(zip(found, group_sites[:len(found)], strict=True))
            notes.append(f"{what}: {len(found)} {kind} cells pinned "
                         f"({group_sites[0]} to {group_sites[len(found) - 1]})")
    return sites, notes


def apply_floorplan(netlist, board, top="top"):
    """Set the ``BEL`` attribute of the floorplanned cells in the Yosys JSON ``netlist`` (a
    path; rewritten in place). Returns :func:`floorplan`'s notes.

    Raises
    ------
    ValueError
        ``board`` has no floorplan, or ``netlist`` has no module ``top``.
    """
    path = Path(netlist)
    design = json.loads(path.read_text())
    if top not in design.get("modules", {}):
        raise ValueError(f"{path} has no module {top!r}")
    cells = design["modules"][top]["cells"]
    sites, notes = floorplan(board, {n: c["type"] for n, c in cells.items()})
    for name, site in sites.items():
        cells[name].setdefault("attributes", {})["BEL"] = site
    path.write_text(json.dumps(design))
    return notes
