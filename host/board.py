"""A real board as a :class:`~octet.host.device.Device`: the UART bridge over a serial port.

:class:`BoardDevice` sends the framed requests of :mod:`octet.host.uart_protocol` to the
:class:`~octet.hdl.uart_bridge.UartBridge` of a board's bitstream (``octet bitstream``) and
implements the four Device primitives with them; everything else (identify, run, counters,
``run_gemm``) is the shared host code. Memory transfers are split into frames of at most
``MAX_DATA`` bytes. A request the bridge reports as corrupted (CRC, TIMEOUT) changed nothing
and is sent again; so are reads and memory writes whose reply was lost or garbled (repeating
them is harmless). A register write whose reply was lost is not repeated (it may have started
a program): that is an error.

pyserial is imported only when a port is opened (``pip install 'octet-npu[fpga]'``). Tests pass
``serial_port=``, any object with pyserial's ``read(n)``, ``write(data)``,
``reset_input_buffer()`` and ``close()``: ``tests/test_board_device.py`` uses a model of the
bridge in Python, ``tests/test_soc_uart.py`` the simulated UART pins of the RTL.
"""

import time

from octet.isa import REG_BYTES

from . import uart_protocol as up
from .device import Device, DeviceError
from .uart_protocol import ProtocolError, Status

__all__ = ["BoardDevice", "LinkError", "DEFAULT_BAUD"]

#: Baud rate of the bitstreams ``octet bitstream`` builds unless told otherwise.
DEFAULT_BAUD = 1_000_000

#: Bridge statuses meaning "the request arrived damaged and changed nothing": resend.
_RESEND = (Status.CRC, Status.TIMEOUT)
_MEANING = {
    Status.CRC: "the board received a corrupted request",
    Status.COMMAND: "the board does not know the command (protocol version mismatch?)",
    Status.LENGTH: "the board rejected the request's length",
    Status.TIMEOUT: "the request arrived truncated",
    Status.BUS_ERROR: "the bus answered with an error",
    Status.ADDRESS: "the address is outside the register window or the device memory",
}


class LinkError(DeviceError):
    """The serial link failed: no reply, garbled replies, or the port cannot be opened."""


def _open_serial(port, baud, timeout):
    try:
        import serial
    except ImportError:
        raise LinkError("talking to a board needs pyserial: pip install 'octet-npu[fpga]' "
                        "(or pip install pyserial)") from None
    try:
        return serial.Serial(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkError(f"cannot open serial port {port} at {baud} baud: {exc}") from None


class BoardDevice(Device):
    """Device on a board running an Octet bitstream, through its UART bridge.

    Parameters
    ----------
    port : str
        Serial port of the board (e.g. ``/dev/ttyUSB0``); ignored with ``serial_port``.
    baud : int
        Baud rate the bitstream was built for.
    timeout : float
        Seconds to wait for a reply byte.
    retries : int
        How often a request is sent again after a link error.
    serial_port : object, optional
        An already open pyserial-like port (tests, or another transport).

    Raises
    ------
    LinkError
        pyserial is missing, the port cannot be opened, or the board does not answer INFO.
    DeviceError
        The board speaks another protocol version.
    """

    def __init__(self, port=None, baud=DEFAULT_BAUD, *, timeout=1.0, retries=2,
                 serial_port=None):
        if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
            raise ValueError(f"baud rate must be a positive integer, not {baud!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        if serial_port is None and not port:
            raise ValueError("BoardDevice needs a serial port name (e.g. /dev/ttyUSB0)")
        self.port = port
        self.baud = baud
        self._retries = retries
        self._seq = 0
        self._owned = serial_port is None
        self._serial = _open_serial(port, baud, timeout) if self._owned else serial_port
        try:
            info = up.decode_info(self._request(up.info_frame, resend=True))
        except LinkError as exc:
            self.close()
            raise LinkError(f"no Octet bridge answers on {port or 'the serial port'} at "
                            f"{baud} baud ({exc}); check the port, the baud rate and that "
                            f"the board runs an Octet bitstream") from None
        if info["version"] >> 4 != up.PROTOCOL_VERSION >> 4:
            self.close()
            raise DeviceError(f"the board's bridge speaks protocol version "
                              f"0x{info['version']:02x}, this host 0x{up.PROTOCOL_VERSION:02x}")
        self.info = info
        self.clock_hz = info["clock_hz"]
        self._max_data = min(info["max_data"], up.MAX_DATA)

    # --- the link ----------------------------------------------------------------------

    def _request(self, make_frame, *args, resend):
        """Send one request and return its reply payload; raise on an error status.

        ``resend``: the request may be repeated when its reply is lost (idempotent).
        """
        problem = None
        for _ in range(self._retries + 1):
            self._seq = (self._seq + 1) & 0xFF
            frame = make_frame(self._seq, *args)
            try:
                self._serial.write(frame)
                reply = up.parse_reply(self._serial.read)
            except ProtocolError as exc:
                problem = str(exc)
                self._drain()
                if not resend:
                    break
                continue
            if reply.seq != self._seq:
                problem = f"reply to request {reply.seq}, expected {self._seq}"
                self._drain()
                if not resend:
                    break
                continue
            if reply.status == Status.OK:
                return reply.payload
            if reply.status in _RESEND:
                problem = _MEANING[reply.status]
                continue
            meaning = _MEANING.get(reply.status, f"unknown status {reply.status!r}")
            raise DeviceError(f"{make_frame.__name__.removesuffix('_frame')}"
                              f"{tuple(a if isinstance(a, int) else len(a) for a in args)}: "
                              f"{meaning}")
        raise LinkError(f"serial link to the board failed: {problem}")

    def _drain(self):
        """Forget whatever is still arriving (a stale or garbled reply)."""
        time.sleep(0.01)
        self._serial.reset_input_buffer()

    def close(self):
        """Close the serial port (only one this device opened)."""
        if self._serial is not None and self._owned:
            self._serial.close()
        self._serial = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- Device primitives ----------------------------------------------------------------

    def read_reg(self, reg):
        reg = int(reg)
        if not 0 <= reg < REG_BYTES or reg % 4:
            raise ValueError(f"register offset must be a multiple of 4 below 0x{REG_BYTES:x}, "
                             f"not 0x{reg:x}")
        return int.from_bytes(self._request(up.read_reg_frame, reg, resend=True), "little")

    def write_reg(self, reg, value):
        reg = int(reg)
        if not 0 <= reg < REG_BYTES or reg % 4:
            raise ValueError(f"register offset must be a multiple of 4 below 0x{REG_BYTES:x}, "
                             f"not 0x{reg:x}")
        self._request(up.write_reg_frame, reg, int(value) & 0xFFFF_FFFF, resend=False)

    def read_mem(self, addr, n):
        out = bytearray()
        while len(out) < n:
            count = min(self._max_data, n - len(out))
            out += self._request(up.read_mem_frame, addr + len(out), count, resend=True)
        return bytes(out)

    def write_mem(self, addr, data):
        data = bytes(data)
        for start in range(0, len(data), self._max_data):
            self._request(up.write_mem_frame, addr + start,
                          data[start:start + self._max_data], resend=True)

    def wait(self, max_cycles):
        """The board runs by itself: sleep for ``max_cycles`` of its clock."""
        time.sleep(max_cycles / self.clock_hz)
        return max_cycles
