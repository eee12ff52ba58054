"""A bank of 32-bit control and status registers behind an AXI4-Lite slave port.

Shaped after amaranth-soc's CSR registers (which cannot be installed from PyPI): each
register has an access mode, and the bank gives the design one set of flat ports per register.

======  =====================================================================================
access  behaviour
======  =====================================================================================
``ro``  reads return ``<name>_r_data``; writes complete with SLVERR and change nothing
``rw``  the bank stores the value (byte-wise per WSTRB, reset value per register) and shows
        it on ``<name>_value``; reads return it
``wo``  writes pulse ``<name>_w_stb`` with ``<name>_w_data``; reads return 0
``w1c`` reads return ``<name>_r_data``; writes pulse ``<name>_w_stb`` and the design clears
        the bits set in ``<name>_w_data``
======  =====================================================================================

``<name>_w_data`` is the register's new value for ``rw`` and the written word with unstrobed
bytes as zero otherwise (so a W1C byte that was not written clears nothing). ``<name>_r_stb``
pulses in the cycle a read of the register is sampled (two cycles after its address was
accepted; the response follows a cycle later), the same cycle its ``r_data`` is sampled: a
64-bit counter can latch its high word there so that the low-then-high read pair is
consistent. Accesses to unmapped addresses complete with SLVERR (never hang). AW and W may
arrive in either order or together; the low two address bits are ignored.

Tested by ``tests/test_axi_units.py`` (Amaranth simulator) and ``tests/test_axi_rtl.py``
(Verilator against cocotbext-axi's ``AxiLiteMaster``).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AxiLiteSignature, AxiResp
from .or_tree import or_tree

__all__ = ["CsrBank", "ACCESS_MODES"]

ACCESS_MODES = ("ro", "rw", "wo", "w1c")

_PORTS = {
    "ro": {"r_data": In(32), "r_stb": Out(1)},
    "rw": {"w_data": Out(32), "w_stb": Out(1), "value": Out(32), "r_stb": Out(1)},
    "wo": {"w_data": Out(32), "w_stb": Out(1)},
    "w1c": {"r_data": In(32), "r_stb": Out(1), "w_data": Out(32), "w_stb": Out(1)},
}


def _parse(registers, addr_width):
    if isinstance(registers, (str, bytes)) or not hasattr(registers, "__iter__"):
        raise TypeError(f"CSR registers must be a list of (name, address, access[, reset]) "
                        f"tuples, not {registers!r}")
    parsed, names, addresses = [], set(), set()
    for entry in registers:
        if not isinstance(entry, tuple) or len(entry) not in (3, 4):
            raise TypeError(f"CSR register must be a (name, address, access[, reset]) tuple, "
                            f"not {entry!r}")
        name, address, access, *rest = entry
        reset = rest[0] if rest else 0
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"CSR register name must be an identifier, not {name!r}")
        if name in names:
            raise ValueError(f"CSR register name {name!r} is used twice")
        if not isinstance(address, int) or isinstance(address, bool) or address % 4:
            raise TypeError(f"CSR register {name} address must be a multiple of 4, "
                            f"not {address!r}")
        if not 0 <= address < 2 ** addr_width:
            raise ValueError(f"CSR register {name} address {address:#x} does not fit in "
                             f"{addr_width} address bits")
        if address in addresses:
            raise ValueError(f"CSR register {name} address {address:#x} is used twice")
        if access not in ACCESS_MODES:
            raise ValueError(f"CSR register {name} access must be one of "
                             f"{', '.join(ACCESS_MODES)}, not {access!r}")
        if not isinstance(reset, int) or isinstance(reset, bool) or not 0 <= reset < 2 ** 32:
            raise TypeError(f"CSR register {name} reset value must be a 32-bit unsigned "
                            f"integer, not {reset!r}")
        if reset and access != "rw":
            raise ValueError(f"CSR register {name} is {access}; only rw registers have a "
                             f"reset value")
        names.add(name)
        addresses.add(address)
        parsed.append((name, address, access, reset))
    if not parsed:
        raise ValueError("CSR bank needs at least one register")
    return parsed


class CsrBank(wiring.Component):
    """32-bit registers on an AXI4-Lite slave.

    Parameters
    ----------
    registers : list of tuple
        ``(name, address, access)`` or ``(name, address, access, reset)``: a unique Python
        identifier, a unique byte address (multiple of 4), one of ``ro``, ``rw``, ``wo``,
        ``w1c``, and for ``rw`` the reset value (default 0).
    addr_width : int
        AXI-Lite address width, 3 to 32.

    Ports
    -----
    bus : In(AxiLiteSignature(addr_width, 32))
        The slave port.
    <name>_r_data : In(32)
        (``ro``, ``w1c``) Value a read returns.
    <name>_r_stb : Out(1)
        (``ro``, ``rw``, ``w1c``) A read of the register was accepted this cycle.
    <name>_w_data : Out(32)
        (``rw``, ``wo``, ``w1c``) Written value, valid with ``w_stb``.
    <name>_w_stb : Out(1)
        (``rw``, ``wo``, ``w1c``) One-cycle pulse on a write.
    <name>_value : Out(32)
        (``rw``) The stored value.
    """

    def __init__(self, registers, addr_width=8):
        if (not isinstance(addr_width, int) or isinstance(addr_width, bool) or
                not 3 <= addr_width <= 32):
            raise TypeError(f"CSR address width must be an integer from 3 to 32, "
                            f"not {addr_width!r}")
        self._registers = _parse(registers, addr_width)
        self._addr_width = addr_width
        members = {"bus": In(AxiLiteSignature(addr_width, 32))}
        for name, _, access, reset in self._registers:
            for port, member in _PORTS[access].items():
                if port == "value":
                    member = Out(32, init=reset)
                if f"{name}_{port}" in members:
                    raise ValueError(f"CSR register port {name}_{port} is defined twice")
                members[f"{name}_{port}"] = member
        super().__init__(members)

    @property
    def registers(self):
        """The register list as ``(name, address, access, reset)`` tuples."""
        return list(self._registers)

    @property
    def addr_width(self):
        return self._addr_width

    def port(self, name, kind):
        """The ``<name>_<kind>`` port, e.g. ``bank.port("ctrl", "w_stb")``."""
        return getattr(self, f"{name}_{kind}")

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        # Write: hold AW and W until both are here and the previous response has been taken.
        aw_held, aw_addr = Signal(), Signal(self._addr_width)
        w_held, w_data, w_strb = Signal(), Signal(32), Signal(4)
        m.d.comb += [bus.awready.eq(~aw_held), bus.wready.eq(~w_held)]
        # Whether the address is a writable register's, decided as it is taken, so the
        # response does not wait for a compare against every register.
        aw_writable = Signal()
        writable = [address >> 2 for _, address, access, _ in self._registers if access != "ro"]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_held.eq(1), aw_addr.eq(bus.awaddr),
                         aw_writable.eq(Cat(bus.awaddr[2:] == word for word in writable).any())]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_held.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        write = Signal()
        m.d.comb += write.eq(aw_held & w_held & ~bus.bvalid)
        byte_mask = Cat(w_strb[i].replicate(8) for i in range(4))

        # Read: one read at a time. The address is registered first, decoded into one
        # select flip-flop per register in the next cycle (``read``), the data sampled into
        # per-group registers in the one after (``selected``) and answered in the third
        # (``sampled``): each select drives only its own register's 32 bits, instead of the
        # address bits driving a multiplexer for every bit of every register.
        ar_held, ar_addr = Signal(), Signal(self._addr_width)
        selected, sampled = Signal(), Signal()
        m.d.comb += bus.arready.eq(~ar_held & ~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [ar_held.eq(1), ar_addr.eq(bus.araddr)]
        read = Signal()
        m.d.comb += read.eq(ar_held & ~selected & ~sampled)

        shown_at = {}
        for name, address, access, _ in self._registers:
            word = address >> 2
            w_hit = write & (aw_addr[2:] == word)
            r_hit = read & (ar_addr[2:] == word)
            if access != "ro":
                m.d.comb += self.port(name, "w_stb").eq(w_hit)
            if access == "rw":
                value = self.port(name, "value")
                merged = (value & ~byte_mask) | (w_data & byte_mask)
                m.d.comb += self.port(name, "w_data").eq(merged)
                with m.If(w_hit):
                    m.d.sync += value.eq(merged)
                shown = value
            else:
                if access != "ro":
                    m.d.comb += self.port(name, "w_data").eq(w_data & byte_mask)
                shown = self.port(name, "r_data") if access != "wo" else 0
            select = Signal(name=f"read_sel_{name}")
            m.d.sync += select.eq(r_hit)
            if access != "wo":
                m.d.comb += self.port(name, "r_stb").eq(select)
            shown_at[word] = (select, shown)
        # AND-OR multiplexers on the one-hot selects, in groups of eight registers (each
        # group a register), then the groups ORed (the unselected ones are zero).
        groups = {}
        for word, pair in shown_at.items():
            groups.setdefault(word >> 3, []).append(pair)
        picked = []
        for group, members in groups.items():
            value = Signal(32, name=f"read_group{group}")
            m.d.sync += value.eq(or_tree([Mux(select, shown, 0) for select, shown in members]))
            picked.append(value)
        read_data = or_tree(picked)
        selected_hit = Signal()     # an existing register was read (else SLVERR)
        m.d.sync += [selected.eq(read), sampled.eq(selected),
                     selected_hit.eq(Cat(select for select, _ in shown_at.values()).any())]

        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(write):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), bus.bvalid.eq(1),
                         bus.bresp.eq(Mux(aw_writable, AxiResp.OKAY, AxiResp.SLVERR))]
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        with m.If(sampled):
            m.d.sync += [ar_held.eq(0), bus.rvalid.eq(1), bus.rdata.eq(read_data),
                         bus.rresp.eq(Mux(selected_hit, AxiResp.OKAY, AxiResp.SLVERR))]
        return m
