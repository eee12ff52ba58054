"""Boards Octet builds bitstreams for, and the top level that puts the SoC on one.

A board entry names its Amaranth platform (from ``amaranth-boards``), its oscillator and the
serial port wired to the host's USB-UART. :class:`BoardTop` derives the system clock from the
oscillator with the FPGA's PLL (ECP5 ``EHXPLLL``, parameters from :func:`ecp5_pll`), holds the
system in reset until the PLL locks, and connects :class:`~octet.hdl.soc.Soc` to the UART pins
and a few LEDs (0: heartbeat, 1: accelerator interrupt, 2: a bridge error in the last
second or so, 7: PLL locked).

``amaranth-boards`` is imported only when a platform is made (the ``fpga`` extra). Tested by
``tests/test_bitstream.py`` (PLL solutions; the whole flow for the smallest configuration).
"""

from dataclasses import dataclass

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    Const,
    Elaboratable,
    Instance,
    Module,
    ResetSignal,
    Signal,
)
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .global_buffer import GlobalBuffer

__all__ = ["Board", "BOARDS", "BoardTop", "PllSolution", "ecp5_pll"]


@dataclass(frozen=True)
class Board:
    """A board: how to make its platform and where its clock and host UART are."""
    name: str
    platform_module: str        # module in amaranth_boards
    platform_class: str
    oscillator_hz: int
    uart: tuple = ("uart", 0)
    leds: int = 8

    def platform(self):
        """A fresh instance of the board's Amaranth platform."""
        import importlib
        try:
            module = importlib.import_module(f"amaranth_boards.{self.platform_module}")
        except ImportError as exc:
            raise ImportError(f"the {self.name} platform needs amaranth-boards: "
                              f"pip install 'octet-npu[fpga]' ({exc})") from None
        return getattr(module, self.platform_class)()


BOARDS = {
    "ulx3s-85f": Board("ulx3s-85f", "ulx3s", "ULX3S_85F_Platform", 25_000_000),
}


@dataclass(frozen=True)
class PllSolution:
    """EHXPLLL dividers: f_out = f_in * clkfb_div / clki_div, VCO = f_out * clkop_div."""
    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in: float
    f_out: float
    f_vco: float


def ecp5_pll(f_in, f_out):
    """The EHXPLLL setting whose output is closest to ``f_out`` (Hz) from ``f_in``.

    Limits from Lattice TN1263 (as ``ecppll`` uses them): input 8-400 MHz, phase detector
    3.125-400 MHz, VCO 400-800 MHz, output 3.125-400 MHz. Raises ValueError outside them.
    """
    if not 8e6 <= f_in <= 400e6:
        raise ValueError(f"PLL input must be 8-400 MHz, not {f_in / 1e6:g} MHz")
    if not 3.125e6 <= f_out <= 400e6:
        raise ValueError(f"PLL output must be 3.125-400 MHz, not {f_out / 1e6:g} MHz")
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            out = f_pfd * clkfb_div
            if out > 400e6:
                break
            for clkop_div in range(1, 129):
                vco = out * clkop_div
                if vco > 800e6:
                    break
                if vco < 400e6:
                    continue
                error = abs(out - f_out)
                if best is None or error < best[0] - 1e-3:
                    best = (error, PllSolution(clki_div, clkfb_div, clkop_div, f_in, out, vco))
                break                      # the lowest VCO divider is as good as any
    if best is None:
        raise ValueError(f"no PLL setting gives {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    return best[1]


class BoardTop(Elaboratable):
    """The SoC on a board: PLL clock, reset until lock, UART pins, status LEDs.

    Parameters
    ----------
    board : Board
    config : AcceleratorConfig
    clock_hz : int
        Requested system clock; the PLL's nearest frequency is used (``self.pll.f_out``).
    divisor : int
        UART cycles per bit at that clock.
    """

    def __init__(self, board, config, clock_hz, divisor):
        from .soc import Soc
        self.board = board
        self.pll = ecp5_pll(board.oscillator_hz, clock_hz)
        self.clock_hz = round(self.pll.f_out)
        self.soc = Soc(config, divisor=divisor, clock_hz=self.clock_hz, unit_domain="units")

    def elaborate(self, platform):
        m = Module()
        pll = self.pll
        m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk,
                                                                       dir="-"))
        locked = Signal()
        m.domains.sync = sync = ClockDomain("sync")
        clk_out = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{pll.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{pll.f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll.clkop_div,
            p_CLKOP_CPHASE=pll.clkop_div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=pll.clkfb_div,
            i_RST=Const(0), i_STDBY=Const(0), i_CLKI=clk_in.i, i_CLKFB=clk_out,
            i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0), o_CLKOP=clk_out, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clk_out)
        # The accelerator's units run on the same clock in a reset-less domain: their only
        # reset is the accelerator's buffered unit reset (held through this domain's reset),
        # which then reaches their flip-flops over a global network (``GlobalBuffer``). This
        # top level is only built for the FPGA, never simulated, so the second name for the
        # clock is a plain wire.
        m.domains.units = ClockDomain("units", reset_less=True)
        m.d.comb += ClockSignal("units").eq(clk_out)
        platform.add_clock_constraint(clk_out, self.clock_hz)
        # The system reset is synchronised in a domain of its own and reaches the ``sync``
        # flip-flops (bridge, CSRs, bus, memory: thousands of set/reset pins) through a
        # global buffer, like the units' reset, instead of a fabric net from one flip-flop.
        m.domains.reset_sync = ClockDomain("reset_sync")
        m.d.comb += ClockSignal("reset_sync").eq(clk_out)
        m.submodules.reset = ResetSynchronizer(~locked, domain="reset_sync")
        m.submodules.reset_buffer = reset_buffer = GlobalBuffer()
        m.d.comb += [reset_buffer.i.eq(ResetSignal("reset_sync")),
                     ResetSignal("sync").eq(reset_buffer.o)]
        del sync

        m.submodules.soc = soc = self.soc
        name, number = self.board.uart
        uart = platform.request(name, number, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        m.d.comb += [soc.rx.eq(uart_rx.i), uart_tx.o.eq(soc.tx)]

        leds = []
        for i in range(self.board.leds):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            leds.append(led)
        heartbeat = Signal(range(self.clock_hz))
        m.d.sync += heartbeat.eq(heartbeat + 1)
        blink = Signal(2)
        with m.If(heartbeat == self.clock_hz - 1):
            m.d.sync += [heartbeat.eq(0), blink.eq(blink + 1)]
        error_seen = Signal(2)            # stretched to one to two heartbeat periods
        with m.If(soc.link_error):
            m.d.sync += error_seen.eq(2)
        with m.Elif((heartbeat == self.clock_hz - 1) & (error_seen != 0)):
            m.d.sync += error_seen.eq(error_seen - 1)
        m.d.comb += [leds[0].o.eq(blink[0]), leds[1].o.eq(soc.irq),
                     leds[2].o.eq(error_seen != 0), leds[-1].o.eq(locked)]
        return m
