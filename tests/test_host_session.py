"""The Verilator session's request protocol (``octet.sim.host_session.serve``), without Verilator.

:func:`serve` answers requests for whatever device it is given, so here it serves a
:class:`GoldenDevice` over a ``multiprocessing`` pipe in a thread: device primitives, host code
run with ``call``, errors sent back as exceptions that survive pickling (the
:class:`AcceleratorError` with its fields, stand-ins for the unpicklable ones), and the end of
the session. The real process (Verilator) is exercised by the Verilator-marked CLI test.
"""

import pickle
import threading
from multiprocessing import Pipe

import numpy as np
import pytest

from octet.host.compiler import run_gemm
from octet.host.device import AcceleratorError, DeviceError, GoldenDevice
from octet.host.devices import accelerator_config, open_device
from octet.isa import ErrorCode, Reg
from octet.sim.host_session import serve


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("local state")
        self.lock = threading.Lock()


def raise_unpicklable(device):
    raise Unpicklable()


def report_progress(device, count):
    for i in range(count):
        device.emit(("step", i))
    return "done"


def run_bad_program(device):
    device.write_mem(0x200, bytes(32))     # opcode 0: ILLEGAL_OPCODE
    device.run(0x200)


@pytest.fixture
def session():
    host, sim = Pipe()
    device = GoldenDevice(accelerator_config(4, 4))
    thread = threading.Thread(target=serve, args=(device, sim), daemon=True)
    thread.start()

    def request(*message):
        host.send(message)
        return host.recv()

    yield request
    host.close()
    thread.join(timeout=5)
    assert not thread.is_alive(), "serve() did not end when the host closed the pipe"


def test_primitives_and_call(session):
    assert session("read_reg", int(Reg.ID)) == ("ok", 0x4F435438)
    assert session("write_mem", 0x40, b"\x01\x02") == ("ok", None)
    assert session("read_mem", 0x40, 2) == ("ok", b"\x01\x02")
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (5, 7), dtype=np.int8)
    b = rng.integers(-128, 128, (7, 3), dtype=np.int8)
    status, (out, stats) = session("call", run_gemm, (a, b), {})
    assert status == "ok"
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64))
    assert stats.counters["instructions"] > 0
    assert session("close") == ("ok", None)


def test_call_may_emit_progress_before_its_reply():
    host, sim = Pipe()
    thread = threading.Thread(target=serve, args=(GoldenDevice(), sim), daemon=True)
    thread.start()
    host.send(("call", report_progress, (3,), {}))
    assert [host.recv() for _ in range(4)] == [("emit", ("step", 0)), ("emit", ("step", 1)),
                                              ("emit", ("step", 2)), ("ok", "done")]
    seen = []       # the same host code on an in-process device
    assert GoldenDevice().call_streaming(report_progress, seen.append, 2) == "done"
    assert seen == [("step", 0), ("step", 1)]
    host.close()
    thread.join(timeout=5)


def test_errors_come_back_as_exceptions(session):
    status, exc = session("call", run_bad_program, (), {})
    assert status == "error" and isinstance(exc, AcceleratorError)
    exc = pickle.loads(pickle.dumps(exc))           # as the host receives it
    assert (exc.code, exc.fault_pc) == (ErrorCode.ILLEGAL_OPCODE, 0x200)
    assert str(exc).startswith("accelerator error ILLEGAL_OPCODE at 0x00000200")
    assert "raised in the Verilator simulation" in exc.__notes__[0]
    status, exc = session("call", raise_unpicklable, (), {})
    assert status == "error" and type(exc) is DeviceError
    assert str(exc) == "Unpicklable: local state"
    status, exc = session("no_such_request")
    assert status == "error" and isinstance(exc, KeyError)


def test_open_device_golden_and_unknown_backend():
    with open_device("golden", accelerator_config(2, 3)) as device:
        assert (device.config.rows, device.config.cols) == (2, 3)
    with pytest.raises(DeviceError, match="unknown backend 'fpga'; choose one of golden, "
                                          "verilator"), open_device("fpga"):
        pass
