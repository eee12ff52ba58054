"""cocotbext-axi models bound to the AXI ports of an Amaranth-generated top level.

Binding recipe. Amaranth flattens an interface port into ``<port>__<member>``: a component
port ``m_axi: Out(AxiSignature())`` appears in Verilog as ``m_axi__awaddr``, ``m_axi__rready``
and so on (and ``s_axil: In(AxiLiteSignature())`` as ``s_axil__awaddr`` ...). cocotbext-axi's
buses are ``cocotb_bus.bus.Bus`` objects, which join prefix and signal name with their
``bus_separator`` argument (default ``"_"``); ``from_prefix`` passes extra keyword arguments on
to ``Bus``, so the port name is the prefix and the separator is the double underscore::

    AxiBus.from_prefix(dut, "m_axi", bus_separator="__")      # m_axi__awaddr, ...
    AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__")  # s_axil__awaddr, ...

(``from_prefix(dut, "m_axi_")`` with the default separator would also find the signals, since
``"m_axi_" + "_" + "awaddr"`` is ``m_axi__awaddr``, but the explicit separator says what is
meant.) Signals the Octet signatures leave out (``awprot``, ``awcache``, ``*user`` ...) are
optional in cocotbext-axi and are simply not driven.

Every channel of a model is a cocotbext-axi stream endpoint with ``set_pause_generator``; a
paused sink holds READY low and a paused source holds VALID low, so :func:`random_pauses` puts
random backpressure on all five channels. The models follow ``dut.rst`` (active high) and
restart their processes when it is released.

``AxiRam`` always answers OKAY (addresses wrap modulo its size). For error responses attach an
``AxiSlave`` whose target raises outside its range, e.g.
``AxiSlave(axi_bus(dut), dut.clk, dut.rst, target=MemoryRegion(0x8000))``: every beat
outside ``[0, 0x8000)`` gets SLVERR.
"""

import logging

from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

__all__ = ["axi_bus", "axil_bus", "attach_axi_ram", "attach_axil_master", "random_pauses",
           "reset", "split_bursts", "BUS_SEPARATOR", "PAGE_BYTES"]

#: Separator Amaranth puts between an interface port's name and its members' names.
BUS_SEPARATOR = "__"
#: AXI4 bursts must not cross a boundary of this many bytes.
PAGE_BYTES = 4096


def split_bursts(addr, beats, bus_bytes):
    """Reference for the masters' burst splitting: ``(address, beats)`` of each INCR burst.

    Bursts are as long as possible: at most 256 beats and never across a 4 KiB boundary.
    """
    bursts = []
    while beats:
        count = min(beats, 256, (PAGE_BYTES - addr % PAGE_BYTES) // bus_bytes)
        bursts.append((addr, count))
        addr, beats = addr + count * bus_bytes, beats - count
    return bursts


def axi_bus(dut, prefix="m_axi"):
    """The cocotbext-axi ``AxiBus`` of the AXI4 port ``<prefix>__*`` (for any AXI model)."""
    return AxiBus.from_prefix(dut, prefix, bus_separator=BUS_SEPARATOR)


def axil_bus(dut, prefix="s_axil"):
    """The cocotbext-axi ``AxiLiteBus`` of the AXI4-Lite port ``<prefix>__*``."""
    return AxiLiteBus.from_prefix(dut, prefix, bus_separator=BUS_SEPARATOR)


def _quiet(dut, prefix):
    """cocotbext-axi logs every burst at INFO, which costs more than the simulation itself.

    Its models log to ``cocotb.<top>.<port>``; keep warnings and errors only.
    """
    logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)


def attach_axi_ram(dut, prefix="m_axi", size=2 ** 16, pause=0.0, rng=None):
    """An ``AxiRam`` slave on the AXI4 master port ``<prefix>__*`` of ``dut``.

    Parameters
    ----------
    dut : cocotb handle
        Top level with ``clk`` and active-high ``rst``.
    prefix : str
        Port name of the AXI master (an ``AxiSignature`` port).
    size : int
        RAM bytes; addresses wrap modulo ``size``.
    pause : float
        Probability that each channel idles in a given cycle (0: never).
    rng : random.Random or numpy Generator
        Source of the pauses.

    Returns
    -------
    cocotbext.axi.AxiRam
        Its channels are ``ram.write_if.aw_channel / w_channel / b_channel`` and
        ``ram.read_if.ar_channel / r_channel``.
    """
    _quiet(dut, prefix)
    ram = AxiRam(axi_bus(dut, prefix), dut.clk, dut.rst, reset_active_level=True, size=size)
    if pause:
        random_pauses(ram, rng, pause)
    return ram


def attach_axil_master(dut, prefix="s_axil", pause=0.0, rng=None):
    """An ``AxiLiteMaster`` driving the AXI4-Lite slave port ``<prefix>__*`` of ``dut``.

    Parameters are as for :func:`attach_axi_ram`. ``await master.read(addr, 4)`` returns a
    response with ``.data`` (bytes) and ``.resp``; ``await master.write(addr, data)`` returns
    one with ``.resp``; WSTRB follows the bytes written (``write(addr + 1, b"\\xaa")`` strobes
    byte 1 only). An SLVERR response does not raise.
    """
    _quiet(dut, prefix)
    master = AxiLiteMaster(axil_bus(dut, prefix), dut.clk, dut.rst, reset_active_level=True)
    if pause:
        random_pauses(master, rng, pause)
    return master


def _pause_stream(rng, probability):
    while True:
        yield rng.random() < probability


def random_pauses(model, rng, probability):
    """Random pauses on every channel of an AXI or AXI-Lite model (0 removes them)."""
    channels = []
    if getattr(model, "write_if", None) is not None:
        channels += [model.write_if.aw_channel, model.write_if.w_channel,
                     model.write_if.b_channel]
    if getattr(model, "read_if", None) is not None:
        channels += [model.read_if.ar_channel, model.read_if.r_channel]
    for channel in channels:
        channel.set_pause_generator(_pause_stream(rng, probability) if probability else None)


async def reset(dut, cycles=4):
    """Hold ``dut.rst`` high for ``cycles`` clock cycles (the clock must be running)."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
