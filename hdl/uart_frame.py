"""The UART bridge's request frame: the registers a request is received into, and the states
of the bridge's request machine that fill them.

A request ``0x5A cmd seq len16 payload crc16`` arrives one byte at a time. :class:`RequestFrame`
holds what it has delivered so far (command, sequence number, length, address, argument, the
running CRC) with the receive side around it: the registered byte and handshake, the payload
counters and their registered compares, the idle timer that gives up on a frame that stops
arriving, and the payload's position in the bridge's buffer. Its :meth:`RequestFrame.add_states`
adds HUNT and one state per frame field to the bridge's request state machine
(:mod:`.uart_bridge`): the frame states are states of that machine (one state register) rather
than a component of their own.

Tested through the bridge by ``tests/test_uart_bridge.py`` (every command, corrupted and
truncated frames, bytes outside a frame) and ``tests/test_soc_uart.py``.
"""

from amaranth.hdl import Cat, Const, Mux, Signal

from octet.host.uart_protocol import CRC_INIT, MAX_DATA, SYNC_REQUEST

from .crc16 import crc16_step

__all__ = ["RequestFrame"]


class RequestFrame:
    """A request frame being received: its registers and receive logic.

    Not an elaboratable: :meth:`add_logic` and :meth:`add_states` add to the bridge's module
    and request state machine.

    Parameters
    ----------
    bus_bytes : int
        Width of the bridge's buffer words in bytes (4, 8 or 16).
    timeout_cycles : int
        Cycles without a byte after which a started frame is dropped.

    Attributes
    ----------
    cmd, seq : Signal(8)
        The command and sequence number.
    length : Signal(16)
        The payload length.
    addr, arg : Signal(32)
        Payload bytes 0 to 3 and 4 to 7 (WRITE_REG's value; READ_MEM's count in ``[0:16]``).
    count : Signal(range(MAX_DATA + 1))
        The memory bytes of the request, set by the last byte.
    crc : Signal(16)
        The CRC over the frame's bytes (zero after the last when the frame checks).
    take : Signal(1)
        A byte taken from the stream last cycle is handled now.
    byte : Signal(8)
        That byte.
    byte_sync, byte_zero : Signal(1)
        That byte is the sync byte; it is zero (registered with it).
    data_index : Signal(17)
        The buffer byte of a WRITE_MEM data byte (``received - 4 + offset``).
    in_data : Signal(1)
        The byte handled now is WRITE_MEM data.
    listening : Signal(1)
        Taking bytes (while hunting for a frame and in it); the bridge sets it again once the
        reply is sent.
    in_frame : Signal(1)
        In a frame (the idle timer runs).
    timed_out : Signal(1)
        The frame stopped arriving.
    """

    def __init__(self, bus_bytes, timeout_cycles):
        self._shift = (bus_bytes - 1).bit_length()
        self._timeout = timeout_cycles
        self.cmd = Signal(8, name="cmd")
        self.seq = Signal(8, name="seq")
        self.length = Signal(16, name="length")
        self.received = Signal(16, name="received")   # payload bytes received so far
        self.to_go = Signal(16, name="to_go")         # payload bytes still to come
        self.crc = Signal(16, name="crc")
        self.addr = Signal(32, name="addr")
        self.arg = Signal(32, name="arg")
        self.count = Signal(range(MAX_DATA + 1), name="count")
        self.idle = Signal(range(timeout_cycles + 1), name="idle")
        self.take = Signal(name="take")
        self.byte = Signal(8, name="byte")
        self.listening = Signal(init=1, name="listening")
        self.timed_out = Signal(name="timed_out")
        self.in_frame = Signal(name="in_frame")
        self.data_index = Signal(17, name="data_index")
        self.in_data = Signal(name="in_data")
        self.byte_sync = Signal(name="byte_sync")     # byte == SYNC_REQUEST
        self.byte_zero = Signal(name="byte_zero")     # byte == 0
        self.len_low_zero = Signal(name="len_low_zero")   # length[:8] == 0
        # Compares on the payload counters, registered: a counter changes only when a byte is
        # handled, and the next byte is handled two cycles later at the earliest.
        self.rcv_zero, self.rcv_three, self.rcv_full, self.rcv_addr, self.rcv_arg, \
            self.to_go_one = (Signal(name=n) for n in ("rcv_zero", "rcv_three", "rcv_full",
                                                       "rcv_addr", "rcv_arg", "to_go_one"))

    def add_logic(self, m, rx):
        """Add the receive logic beside the request state machine: the byte register and
        ``rx.ready``, the counter compares, the idle timer and the address and argument bytes.
        """
        take, byte, received, to_go = self.take, self.byte, self.received, self.to_go
        # A byte taken from rx is registered (take, byte) and handled in the next cycle, so
        # the handshake does not run on into the frame logic. rx.ready comes from registers:
        # set while hunting for a frame or taking its bytes (HUNT to CRC1, listening), low in
        # the cycle a byte is handled (the state moves on in it) and when a timeout is due.
        m.d.comb += rx.ready.eq(self.listening & ~take & ~self.timed_out)
        m.d.sync += [take.eq(rx.valid & rx.ready), byte.eq(rx.payload)]
        # Compares on the byte, registered with it: the frame states' decisions (the sync
        # byte, a zero length) then start from flip-flops.
        m.d.sync += [self.byte_sync.eq(rx.payload == SYNC_REQUEST),
                     self.byte_zero.eq(rx.payload == 0)]
        m.d.sync += [self.rcv_zero.eq(received == 0), self.rcv_three.eq(received == 3),
                     self.rcv_full.eq(received == 3 + MAX_DATA),
                     self.rcv_addr.eq(received < 4),
                     self.rcv_arg.eq((received >= 4) & (received < 8)),
                     self.to_go_one.eq(to_go == 1)]

        # The idle timer runs from the sync byte until the frame's last byte.
        idle = self.idle
        with m.If(take | ~self.in_frame):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._timeout):
            m.d.sync += idle.eq(idle + 1)
        # Registered (a frame times out one cycle after the limit; it is ~20 ms anyway).
        m.d.sync += self.timed_out.eq(self.in_frame & (idle == self._timeout) & ~take)

        # Payload: address bytes 0..3, argument bytes 4..7; for WRITE_MEM bytes 4.. are data.
        # received - 4 + offset and "received in [4, 4 + MAX_DATA)" (data_index, in_data) are
        # kept in registers by the PAYLOAD state (both only matter once received >= 4, when
        # the offset is known).
        with m.If(take & self.rcv_addr):
            m.d.sync += self.addr.word_select(received[:2], 8).eq(byte)
        with m.If(take & self.rcv_arg):
            m.d.sync += self.arg.word_select(received[:2], 8).eq(byte)

    def add_states(self, m, mem_count, settle, after, timeout_state):
        """Add HUNT and the frame states (COMMAND to CRC1) to the state machine being built.

        Parameters
        ----------
        m : Module
            Inside the ``with m.FSM()`` of the bridge's request machine.
        mem_count : Value
            The memory bytes of the request, taken into ``count`` by the last byte.
        settle : Signal
            Cleared by the last byte (the bridge's SETTLE counter).
        after : str
            The state after the frame's last byte.
        timeout_state : str
            The state a frame that stops arriving goes to (the bridge starts the TIMEOUT reply
            itself, from ``in_frame & timed_out``).
        """
        take, byte, crc = self.take, self.byte, self.crc
        crc_in = crc16_step(crc, byte)
        with m.State("HUNT"):
            with m.If(take & self.byte_sync):
                m.d.sync += [crc.eq(CRC_INIT), self.received.eq(0), self.in_frame.eq(1),
                             self.in_data.eq(0), self.addr.eq(0), self.arg.eq(0),
                             self.seq.eq(0)]
                m.next = "COMMAND"
        # Frame bytes: each state takes one byte (PAYLOAD takes ``length``), or gives up
        # with TIMEOUT when the frame stops arriving.
        for state, next_state in (("COMMAND", "SEQ"), ("SEQ", "LEN0"), ("LEN0", "LEN1"),
                                  ("LEN1", "PAYLOAD"), ("PAYLOAD", "CRC0"), ("CRC0", "CRC1"),
                                  ("CRC1", after)):
            with m.State(state):
                with m.If(take):
                    m.d.sync += crc.eq(crc_in)
                    self._frame_byte(m, state, next_state, mem_count, settle)
                with m.Elif(self.timed_out):
                    m.next = timeout_state

    def _frame_byte(self, m, state, after, mem_count, settle):
        """What the request state ``state`` does with the byte it takes."""
        byte, received, length, to_go = self.byte, self.received, self.length, self.to_go
        if state == "COMMAND":
            m.d.sync += self.cmd.eq(byte)
        elif state == "SEQ":
            m.d.sync += self.seq.eq(byte)
        elif state == "LEN0":
            m.d.sync += [length[:8].eq(byte), self.len_low_zero.eq(self.byte_zero)]
        elif state == "LEN1":
            m.d.sync += [length[8:].eq(byte), to_go.eq(Cat(length[:8], byte))]
            with m.If(self.len_low_zero & self.byte_zero):
                m.next = "CRC0"
            with m.Else():
                m.next = after
            return
        elif state == "PAYLOAD":
            m.d.sync += [received.eq(received + 1), to_go.eq(to_go - 1)]
            # data_index and in_data follow received (see add_logic).
            data_index, in_data, shift = self.data_index, self.in_data, self._shift
            offset_m3 = Cat(byte[:shift], Const(0, 17 - shift)) + (1 << 17) - 3
            m.d.sync += data_index.eq(Mux(self.rcv_zero, offset_m3[:17], data_index + 1))
            with m.If(self.rcv_three):
                m.d.sync += in_data.eq(1)
            with m.If(self.rcv_full):
                m.d.sync += in_data.eq(0)
            with m.If(self.to_go_one):
                # in_data is only set within the payload (the buffer's write enable uses it
                # without the state).
                m.d.sync += in_data.eq(0)
                m.next = after
            return
        elif state == "CRC1":
            count = self.count
            m.d.sync += [self.in_frame.eq(0), count.eq(mem_count[:len(count)]),
                         settle.eq(0), self.listening.eq(0)]
        m.next = after
