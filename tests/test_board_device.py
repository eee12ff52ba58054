"""BoardDevice (``octet.host.board``) and the protocol (``octet.host.uart_protocol``), no RTL.

References: the CRC-16/CCITT-FALSE check value (0x29B1 for "123456789"); a model of the
bridge written here in Python that answers frames from a golden device
(``octet.host.device.GoldenDevice``), with injectable faults (a lost reply, a garbled reply,
a "corrupted request" status); and NumPy for a GEMM run through the whole host stack.
"""

import struct

import numpy as np
import pytest

from octet.host import uart_protocol as up
from octet.host.board import BoardDevice, LinkError
from octet.host.compiler import run_gemm
from octet.host.device import DeviceError, GoldenDevice
from octet.host.devices import accelerator_config
from octet.host.uart_protocol import Command, Status
from octet.isa import Reg
from octet.sim.golden import matmul_int32


class BridgeModel:
    """The bridge's behaviour in Python, as a pyserial-like object."""

    def __init__(self, device, clock_hz=100_000_000):
        self.device = device
        self.clock_hz = clock_hz
        self.out = bytearray()
        self.faults = []          # per request: None, "drop", "garble", "crc"
        self.requests = 0

    def write(self, frame):
        frame = bytes(frame)
        assert frame[0] == up.SYNC_REQUEST and up.crc16(frame[1:]) == 0
        cmd, seq, length = frame[1], frame[2], struct.unpack("<H", frame[3:5])[0]
        payload = frame[5:5 + length]
        self.requests += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault == "crc":
            self.out += up.encode_reply(Status.CRC, seq)
            return len(frame)
        status, data = self._execute(cmd, payload)
        reply = up.encode_reply(status, seq, data)
        if fault == "garble":
            reply = reply[:6] + bytes([reply[6] ^ 1]) + reply[7:]
        if fault != "drop":
            self.out += reply
        return len(frame)

    def _execute(self, cmd, payload):
        mem = self.device.config.mem_bytes
        if cmd == Command.INFO:
            return Status.OK, struct.pack("<BBHI", up.PROTOCOL_VERSION,
                                          self.device.config.bus_bytes, up.MAX_DATA,
                                          self.clock_hz)
        if cmd == Command.READ_REG:
            return Status.OK, struct.pack("<I", self.device.read_reg(
                struct.unpack("<I", payload)[0]))
        if cmd == Command.WRITE_REG:
            self.device.write_reg(*struct.unpack("<II", payload))
            return Status.OK, b""
        addr = struct.unpack("<I", payload[:4])[0]
        if cmd == Command.READ_MEM:
            n = struct.unpack("<H", payload[4:6])[0]
            if addr + n > mem:
                return Status.ADDRESS, b""
            return Status.OK, self.device.read_mem(addr, n)
        if addr + len(payload) - 4 > mem:
            return Status.ADDRESS, b""
        self.device.write_mem(addr, payload[4:])
        return Status.OK, b""

    def read(self, n=1):
        out, self.out[:] = bytes(self.out[:n]), self.out[n:]
        return out

    def reset_input_buffer(self):
        self.out.clear()

    def close(self):
        pass


@pytest.fixture
def board(monkeypatch):
    monkeypatch.setattr("octet.host.board.time.sleep", lambda s: None)
    model = BridgeModel(GoldenDevice(accelerator_config(2, 2), timed=False))
    return model, BoardDevice("model", serial_port=model)


def test_crc_check_value_and_frames():
    assert up.crc16(b"123456789") == 0x29B1
    frame = up.read_mem_frame(5, 0x1234, 16)
    assert frame[:5] == bytes([up.SYNC_REQUEST, Command.READ_MEM, 5, 6, 0])
    assert up.crc16(frame[1:]) == 0
    reply = up.encode_reply(Status.OK, 5, b"abc")
    parsed = up.parse_reply(BridgeModel.read.__get__(type("R", (), {"out": bytearray(
        b"\x00\x13" + reply)})()))
    assert parsed == up.Reply(Status.OK, 5, b"abc")
    with pytest.raises(ValueError, match="READ_MEM count must be 1..256"):
        up.read_mem_frame(0, 0, 257)
    with pytest.raises(ValueError, match="WRITE_MEM carries 1..256 bytes"):
        up.write_mem_frame(0, 0, b"")


def test_gemm_through_the_protocol(board):
    model, device = board
    assert device.clock_hz == 100_000_000
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (9, 13), dtype=np.int8)
    b = rng.integers(-128, 128, (13, 6), dtype=np.int8)
    out, _ = run_gemm(device, a, b)
    np.testing.assert_array_equal(out, matmul_int32(a, b))


def test_large_transfers_are_split(board):
    model, device = board
    blob = bytes(np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8))
    before = model.requests
    device.write_mem(0x333, blob)
    assert model.requests - before == 4               # 256 + 256 + 256 + 232
    assert device.read_mem(0x333, 1000) == blob


def test_link_faults_are_retried(board):
    model, device = board
    device.write_mem(0x100, b"hello")
    model.faults = ["drop", "garble"]                 # two lost replies, third try answers
    assert device.read_mem(0x100, 5) == b"hello"
    model.faults = ["crc"]                            # the bridge saw a damaged request
    device.write_reg(Reg.PROG_BASE, 0x40)
    assert device.read_reg(Reg.PROG_BASE) == 0x40
    model.faults = ["drop"]                           # a register write is not repeated
    with pytest.raises(LinkError, match="serial link to the board failed: no reply"):
        device.write_reg(Reg.PROG_BASE, 0x80)
    model.faults = ["drop"] * 3
    with pytest.raises(LinkError, match="no reply"):
        device.read_reg(Reg.ID)


def test_error_statuses_raise(board):
    model, device = board
    with pytest.raises(DeviceError, match="outside the register window or the device memory"):
        device.read_mem(device.config.mem_bytes - 2, 4)
    with pytest.raises(ValueError, match="register offset must be a multiple of 4"):
        device.read_reg(0x02)


def test_open_errors(monkeypatch):
    with pytest.raises(ValueError, match="needs a serial port name"):
        BoardDevice()
    try:
        import serial  # noqa: F401
    except ImportError:
        with pytest.raises(LinkError, match="needs pyserial"):
            BoardDevice("/dev/ttyOCTET-none")
    else:
        with pytest.raises(LinkError, match="cannot open serial port /dev/ttyOCTET-none"):
            BoardDevice("/dev/ttyOCTET-none")

    class Silent(BridgeModel):
        def write(self, frame):
            return len(frame)
    monkeypatch.setattr("octet.host.board.time.sleep", lambda s: None)
    with pytest.raises(LinkError, match="no Octet bridge answers"):
        BoardDevice("x", serial_port=Silent(GoldenDevice()))


def test_board_backend_of_open_device(monkeypatch):
    from octet.host.devices import open_device
    monkeypatch.delenv("OCTET_BOARD_PORT", raising=False)
    with pytest.raises(DeviceError, match="needs the board's serial port: --port DEV or "
                                          "OCTET_BOARD_PORT"), open_device("board"):
        pass
    monkeypatch.setenv("OCTET_BOARD_PORT", "/dev/ttyFAKE")
    monkeypatch.setattr("octet.host.board._open_serial", lambda port, baud, timeout: BridgeModel(
        GoldenDevice(accelerator_config(2, 2), timed=False)))
    with open_device("board", accelerator_config(2, 2)) as device:
        assert isinstance(device, BoardDevice) and device.port == "/dev/ttyFAKE"
        assert device.read_reg(Reg.ID) == 0x4F435438
    with pytest.raises(DeviceError, match="has a 2x2 array, not 4x4; pass --rows 2 --cols 2"), \
            open_device("board", accelerator_config(4, 4)):
        pass


def test_board_port_and_baud_arguments(monkeypatch):
    """open_device's port and baud come before the environment's; bad baud rates are named."""
    from octet.host.devices import open_device
    opened = []

    def fake_serial(port, baud, timeout):
        opened.append((port, baud))
        return BridgeModel(GoldenDevice(accelerator_config(2, 2), timed=False))
    monkeypatch.setenv("OCTET_BOARD_PORT", "/dev/ttyENV")
    monkeypatch.setenv("OCTET_BOARD_BAUD", "115200")
    monkeypatch.setattr("octet.host.board._open_serial", fake_serial)
    with open_device("board", accelerator_config(2, 2), port="/dev/ttyARG", baud=3_000_000):
        pass
    with open_device("board", accelerator_config(2, 2)):
        pass
    assert opened == [("/dev/ttyARG", 3_000_000), ("/dev/ttyENV", 115200)]
    with pytest.raises(DeviceError, match="baud rate must be a positive integer, not 0"), \
            open_device("board", accelerator_config(2, 2), baud=0):
        pass
    monkeypatch.setenv("OCTET_BOARD_BAUD", "fast")
    with pytest.raises(DeviceError, match="OCTET_BOARD_BAUD must be a baud rate, not 'fast'"), \
            open_device("board", accelerator_config(2, 2)):
        pass


def test_cli_gemm_on_the_board_backend(monkeypatch, tmp_path, capsys):
    """``octet gemm --backend board --port DEV``: the GEMM runs through the protocol (against
    the bridge model above) and equals NumPy's product; --port without the board is refused."""
    import json

    from octet.cli import main
    monkeypatch.delenv("OCTET_BOARD_PORT", raising=False)
    monkeypatch.setattr("octet.host.board.time.sleep", lambda s: None)
    model = BridgeModel(GoldenDevice(accelerator_config(2, 2), timed=False))
    ports = []
    monkeypatch.setattr("octet.host.board._open_serial",
                        lambda port, baud, timeout: ports.append((port, baud)) or model)
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (7, 11), dtype=np.int8)
    b = rng.integers(-128, 128, (11, 5), dtype=np.int8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    args = ["gemm", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "-o",
            str(tmp_path / "c.npy"), "--rows", "2", "--cols", "2", "--json"]
    assert main(args + ["--backend", "board", "--port", "/dev/ttyFAKE0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["backend"] == "board"
    assert ports == [("/dev/ttyFAKE0", 1_000_000)] and model.requests > 10
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), matmul_int32(a, b))
    assert main(args + ["--port", "/dev/ttyFAKE0"]) == 2
    assert "--port and --baud are for --backend board" in capsys.readouterr().err
    assert main(args + ["--backend", "board"]) == 2
    assert "needs the board's serial port: --port DEV" in capsys.readouterr().err
