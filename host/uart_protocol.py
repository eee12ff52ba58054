"""The framed UART protocol between a host and :class:`~octet.hdl.uart_bridge.UartBridge`.

This module is the one definition of the protocol (``docs/fpga.md`` describes it in words):
the constants the gateware is generated from (sync bytes, commands, status codes, the CRC),
and the host's frame encoder and reply parser, which the RTL tests use too.

A request is ``SYNC_REQUEST, command, seq, len_lo, len_hi, payload[len], crc_hi, crc_lo``; a
reply is ``SYNC_REPLY, status, seq, len_lo, len_hi, payload[len], crc_hi, crc_lo``. The CRC is
CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, not reflected, no final XOR) over
every byte after the sync byte up to the end of the payload, sent most significant byte first,
so the CRC of a whole frame after its sync byte is 0.

Tested by ``tests/test_uart_protocol.py`` (encoder, parser, CRC check value) and through the
RTL tests of the bridge (``tests/test_uart_bridge.py``, ``tests/test_soc_uart.py``).
"""

import enum
import struct
from dataclasses import dataclass

__all__ = [
    "SYNC_REQUEST", "SYNC_REPLY", "MAX_DATA", "HEADER_BYTES", "CRC_POLY", "CRC_INIT",
    "PROTOCOL_VERSION", "Command", "Status", "ProtocolError", "Reply", "crc16", "crc16_update",
    "encode_request", "encode_reply", "parse_reply", "request_payload_bytes",
    "read_reg_frame", "write_reg_frame", "read_mem_frame", "write_mem_frame", "info_frame",
    "decode_info",
]

#: First byte of every request and of every reply.
SYNC_REQUEST = 0x5A
SYNC_REPLY = 0xA5
#: Largest number of memory bytes one READ_MEM or WRITE_MEM frame carries.
MAX_DATA = 256
#: Bytes before the payload: sync, command/status, seq, length (2).
HEADER_BYTES = 5
#: CRC-16/CCITT-FALSE.
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
#: Reported by the INFO command; a host accepts the same major version (high nibble).
PROTOCOL_VERSION = 0x10


class Command(enum.IntEnum):
    """Request commands and their payloads (all integers little endian)."""
    INFO = 0x00        # no payload -> version u8, bus_bytes u8, max_data u16, clock_hz u32
    READ_REG = 0x01    # addr u32 -> value u32
    WRITE_REG = 0x02   # addr u32, value u32 -> nothing
    READ_MEM = 0x03    # addr u32, count u16 (1..MAX_DATA) -> count bytes
    WRITE_MEM = 0x04   # addr u32, data (1..MAX_DATA bytes) -> nothing


class Status(enum.IntEnum):
    """Reply status codes. Every status except OK comes with an empty payload and means the
    request changed nothing (BUS_ERROR on a register write excepted: the register's own
    rules apply, e.g. a write to a read-only register changes nothing anyway)."""
    OK = 0
    CRC = 1          # the request's CRC did not check
    COMMAND = 2      # unknown command
    LENGTH = 3       # payload length wrong for the command, or a count out of 1..MAX_DATA
    TIMEOUT = 4      # the request stopped arriving in the middle (truncated frame)
    BUS_ERROR = 5    # the bus answered SLVERR / DECERR
    ADDRESS = 6      # register address not 4-byte aligned or outside the register window,
    #                  or memory bytes outside the device memory


#: Payload bytes of each request (None: variable, 5 .. 4 + MAX_DATA).
_REQUEST_PAYLOAD = {Command.INFO: 0, Command.READ_REG: 4, Command.WRITE_REG: 8,
                    Command.READ_MEM: 6, Command.WRITE_MEM: None}


class ProtocolError(RuntimeError):
    """A reply that cannot be parsed (bad sync, CRC, length, sequence number)."""


def request_payload_bytes(command):
    """Payload length a request of ``command`` must have (None: 5 to 4 + MAX_DATA)."""
    return _REQUEST_PAYLOAD[Command(command)]


def crc16_update(crc, byte):
    """One byte into a CRC-16/CCITT-FALSE register (the bitwise form the gateware unrolls)."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _table():
    return [crc16_update(0, b) for b in range(256)]


_TABLE = _table()


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc


def _frame(sync, first, seq, payload):
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"sequence number must be 0..255, not {seq!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the 16-bit length")
    body = bytes([first, seq]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([sync]) + body + struct.pack(">H", crc16(body))


def encode_request(command, seq, payload=b""):
    """A request frame: ``command`` (int, not checked, so tests can send unknown ones)."""
    return _frame(SYNC_REQUEST, int(command) & 0xFF, seq, payload)


def encode_reply(status, seq, payload=b""):
    """A reply frame, as the bridge sends it (for models and tests)."""
    return _frame(SYNC_REPLY, int(status) & 0xFF, seq, payload)


def _check_addr(addr):
    if not isinstance(addr, int) or not 0 <= addr < 1 << 32:
        raise ValueError(f"address must be an integer in [0, 2**32), not {addr!r}")


def info_frame(seq):
    return encode_request(Command.INFO, seq)


def read_reg_frame(seq, addr):
    _check_addr(addr)
    return encode_request(Command.READ_REG, seq, struct.pack("<I", addr))


def write_reg_frame(seq, addr, value):
    _check_addr(addr)
    return encode_request(Command.WRITE_REG, seq,
                          struct.pack("<II", addr, int(value) & 0xFFFF_FFFF))


def read_mem_frame(seq, addr, count):
    _check_addr(addr)
    if not isinstance(count, int) or not 1 <= count <= MAX_DATA:
        raise ValueError(f"READ_MEM count must be 1..{MAX_DATA}, not {count!r}")
    return encode_request(Command.READ_MEM, seq, struct.pack("<IH", addr, count))


def write_mem_frame(seq, addr, data):
    _check_addr(addr)
    if not 1 <= len(data) <= MAX_DATA:
        raise ValueError(f"WRITE_MEM carries 1..{MAX_DATA} bytes, not {len(data)}")
    return encode_request(Command.WRITE_MEM, seq, struct.pack("<I", addr) + bytes(data))


@dataclass(frozen=True)
class Reply:
    """A parsed reply: its status (a :class:`Status` or an unknown int), seq and payload."""
    status: object
    seq: int
    payload: bytes


def parse_reply(read):
    """Read one reply with ``read(n) -> bytes`` (returns fewer bytes on timeout).

    Bytes before the sync byte are skipped (at most a frame's worth). Raises
    :class:`ProtocolError` on a timeout, a bad CRC or an impossible length.
    """
    skipped = 0
    while True:
        first = read(1)
        if not first:
            raise ProtocolError("no reply from the board (timeout)")
        if first[0] == SYNC_REPLY:
            break
        skipped += 1
        if skipped > HEADER_BYTES + MAX_DATA + 2:
            raise ProtocolError(f"no reply sync byte in {skipped} bytes")
    header = read(4)
    if len(header) < 4:
        raise ProtocolError("reply header truncated (timeout)")
    status, seq, length = header[0], header[1], struct.unpack("<H", header[2:4])[0]
    if length > MAX_DATA:
        raise ProtocolError(f"reply announces {length} payload bytes (at most {MAX_DATA})")
    rest = read(length + 2)
    if len(rest) < length + 2:
        raise ProtocolError(f"reply truncated: {len(rest)} of {length + 2} bytes (timeout)")
    if crc16(header + rest) != 0:
        raise ProtocolError("reply CRC does not check")
    if status in Status._value2member_map_:
        status = Status(status)
    return Reply(status, seq, bytes(rest[:length]))


def decode_info(payload):
    """INFO payload -> dict(version, bus_bytes, max_data, clock_hz)."""
    if len(payload) != 8:
        raise ProtocolError(f"INFO reply has {len(payload)} payload bytes, expected 8")
    version, bus_bytes, max_data, clock_hz = struct.unpack("<BBHI", payload)
    return {"version": version, "bus_bytes": bus_bytes, "max_data": max_data,
            "clock_hz": clock_hz}
