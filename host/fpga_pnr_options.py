"""nextpnr's options for ``octet bitstream``: the placer presets and the command line.

nextpnr-ecp5 offers two placers: the analytic "heap" placer (its default) and the
electrostatic "static" one. On the 8x8 board system the static placer with nextpnr's
settings left less routing congestion than heap (74.3 against 67.0 MHz on the fourth timing
round's netlist), so it became ``octet bitstream``'s default. "heap-timing" is the heap placer
with timing weighted ten times as much as by default (``--placer-heap-timingweight 100``), a
steeper criticality exponent (3) and a lower density limit (0.8); docs/fpga.md ("The tenth
round") has its measurements.

Tested by ``tests/test_bitstream.py``.
"""

__all__ = ["PLACERS", "DEFAULT_PLACER", "nextpnr_options"]

#: The placers ``octet bitstream --placer`` offers -> their nextpnr options, the default first.
PLACERS = {
    "static": "--placer static",
    "heap": "--placer heap",
    "heap-timing": "--placer heap --placer-heap-timingweight 100 --placer-heap-critexp 3 "
                   "--placer-heap-beta 0.8",
}
#: ``octet bitstream``'s placer when none is given.
DEFAULT_PLACER = next(iter(PLACERS))


def nextpnr_options(seed, placer, name, timing_detail=False):
    """nextpnr's options (after those Amaranth's ECP5 platform gives) for a build.

    Parameters
    ----------
    seed : int
    placer : str
        A key of :data:`PLACERS`.
    name : str
        The design's name: nextpnr writes its report to ``<name>.report.json``.
    timing_detail : bool
        Also write the routed arrival at every endpoint into the report.
    """
    if placer not in PLACERS:
        raise ValueError(f"nextpnr placer must be one of {', '.join(PLACERS)}, not {placer!r}")
    return (f"--timing-allow-fail --seed {seed} {PLACERS[placer]} --router router2 "
            f"--report {name}.report.json" + (" --detailed-timing-report" if timing_detail
                                               else ""))
