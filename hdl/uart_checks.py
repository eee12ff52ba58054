"""The UART bridge's request checks: a received frame's verdict, from flip-flops.

:class:`UartRequestChecks` judges a whole request held by the bridge (:mod:`.uart_bridge`)
before anything touches a bus: its CRC, command, payload length (and READ_MEM count), and
its register or memory address range. The verdicts are registered in steps (the request's
end address, then one flag per check, then the first failing check's status), so they are
valid three cycles after the request's last byte set their inputs; the bridge waits for them
in its SETTLE state.

Tested through the bridge by ``tests/test_uart_bridge.py`` (every error reply, and no write
on a rejected frame).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from octet.host.uart_protocol import MAX_DATA, Command, Status

__all__ = ["COMMAND_FLAGS", "UartRequestChecks"]

#: One flag per :class:`~octet.host.uart_protocol.Command` (``info``, ``read_reg``, ...): the
#: request's command, decoded.
COMMAND_FLAGS = data.StructLayout({c.name.lower(): 1 for c in Command})


class UartRequestChecks(wiring.Component):
    """The first failing check of a received request, three cycles after its inputs settle.

    Parameters
    ----------
    mem_bytes : int
        Size of the device memory; a memory request reaching beyond it fails ADDRESS.
    reg_addr_width : int
        Width of the register address; READ_REG / WRITE_REG beyond it fail ADDRESS.

    Ports
    -----
    commands : In(COMMAND_FLAGS)
        The request's command (no flag set: unknown, COMMAND).
    length : In(16)
        The request's payload length.
    read_count : In(16)
        READ_MEM's count (the low half of the argument), 1 to ``MAX_DATA``.
    addr : In(32)
        The request's address.
    count : In(range(MAX_DATA + 1))
        The memory bytes of the request.
    crc : In(16)
        The CRC register after the whole frame (zero when the frame checks).
    check_fail : Out(1)
        Some check fails.
    check_status : Out(3)
        The first failing check's status: CRC, COMMAND, LENGTH, then ADDRESS.

    Both outputs are flip-flops, named as before the checks had their own module (timing
    reports are searched by these names).
    """

    def __init__(self, mem_bytes, reg_addr_width):
        for name, value, low, high in (("memory size", mem_bytes, 1, 1 << 32),
                                       ("register address width", reg_addr_width, 3, 32)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise TypeError(f"UART request checks {name} must be an integer from {low} to "
                                f"{high}, not {value!r}")
        self._mem = mem_bytes
        self._reg_width = reg_addr_width
        super().__init__({
            "commands": In(COMMAND_FLAGS), "length": In(16), "read_count": In(16),
            "addr": In(32), "count": In(range(MAX_DATA + 1)), "crc": In(16),
            "check_fail": Out(1), "check_status": Out(3),
        })

    def elaborate(self, platform):
        m = Module()
        is_cmd = {c: self.commands[c.name.lower()] for c in Command}
        read_mem = is_cmd[Command.READ_MEM]
        length, addr, count = self.length, self.addr, self.count

        expected = {Command.INFO: 0, Command.READ_REG: 4, Command.WRITE_REG: 8,
                    Command.READ_MEM: 6}
        known = Signal()
        length_ok = Signal()
        m.d.comb += [known.eq(Cat(*is_cmd.values()).any()),
                     length_ok.eq(Cat(*(is_cmd[c] & (length == n) for c, n in expected.items()),
                                      is_cmd[Command.WRITE_MEM] & (length >= 5) &
                                      (length <= 4 + MAX_DATA)).any())]
        count_ok = ~read_mem | ((self.read_count != 0) & (self.read_count <= MAX_DATA))
        reg_cmd = is_cmd[Command.READ_REG] | is_cmd[Command.WRITE_REG]
        mem_cmd = is_cmd[Command.READ_MEM] | is_cmd[Command.WRITE_MEM]
        reg_ok = (addr[:2] == 0) & (addr[self._reg_width:] == 0) if self._reg_width < 32 \
            else (addr[:2] == 0)
        # Registered in two steps (the end address, then every verdict), then the outcome
        # once more, so the bridge's CHECK state decides from flip-flops and its reply does
        # not run through the verdicts' priority chain.
        end = Signal(34)
        m.d.sync += end.eq(addr + count)
        crc_bad, cmd_bad, length_bad, addr_bad = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [crc_bad.eq(self.crc != 0), cmd_bad.eq(~known),
                     length_bad.eq(~length_ok | ~count_ok),
                     addr_bad.eq((reg_cmd & ~reg_ok) | (mem_cmd & (end > self._mem)))]
        check_fail, check_status = self.check_fail, self.check_status
        m.d.sync += [check_fail.eq(crc_bad | cmd_bad | length_bad | addr_bad),
                     check_status.eq(Mux(crc_bad, Status.CRC, Mux(
                         cmd_bad, Status.COMMAND, Mux(length_bad, Status.LENGTH,
                                                      Status.ADDRESS))))]
        return m
