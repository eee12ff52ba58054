"""nextpnr's options for ``octet bitstream``: the placer presets and the command line.

nextpnr-ecp5 offers two placers: the analytic "heap" placer (its default) and the
electrostatic "static" one. On the 8x8 board system the static placer with nextpnr's
settings left less routing congestion than heap (74.3 against 67.0 MHz on the fourth timing
round's netlist), so it became ``octet bitstream``'s default. "heap-timing" is the heap placer
with timing weighted ten times as much as by default (``--placer-heap-timingweight 100``), a
steeper criticality exponent (3) and a lower density limit (0.8); docs/fpga.md ("The tenth
round") has its measurements.

Routing is always nextpnr's router2 (router1 routed under 10 % of the 8x8 system's arcs in four
minutes). "router2-alt" is router2 with its alternate cost weights (``--router2-alt-weights``):
on the 8x8 system it needs four to nine times as many iterations (two to three times the
routing time), and over four placements it routed two faster and two slower than router2's own
weights, 79.0 against 81.0 MHz on average; docs/fpga.md ("The thirteenth round").

Tested by ``tests/test_bitstream.py``.
"""

__all__ = ["PLACERS", "DEFAULT_PLACER", "ROUTERS", "DEFAULT_ROUTER", "nextpnr_options"]

#: The placers ``octet bitstream --placer`` offers -> their nextpnr options, the default first.
PLACERS = {
    "static": "--placer static",
    "heap": "--placer heap",
    "heap-timing": "--placer heap --placer-heap-timingweight 100 --placer-heap-critexp 3 "
                   "--placer-heap-beta 0.8",
}
#: ``octet bitstream``'s placer when none is given.
DEFAULT_PLACER = next(iter(PLACERS))
#: The routers ``octet bitstream --router`` offers -> their nextpnr options, the default first.
ROUTERS = {
    "router2": "--router router2",
    "router2-alt": "--router router2 --router2-alt-weights",
}
#: ``octet bitstream``'s router when none is given.
DEFAULT_ROUTER = next(iter(ROUTERS))


def nextpnr_options(seed, placer, name, timing_detail=False, router=DEFAULT_ROUTER):
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
    router : str
        A key of :data:`ROUTERS`.
    """
    if placer not in PLACERS:
        raise ValueError(f"nextpnr placer must be one of {', '.join(PLACERS)}, not {placer!r}")
    if router not in ROUTERS:
        raise ValueError(f"nextpnr router must be one of {', '.join(ROUTERS)}, not {router!r}")
    return (f"--timing-allow-fail --seed {seed} {PLACERS[placer]} {ROUTERS[router]} "
            f"--report {name}.report.json" + (" --detailed-timing-report" if timing_detail
                                               else ""))
