"""Opening an accelerator device by backend name, and the configuration of an R x C design.

:func:`open_device` is the one place that knows the backends: ``"golden"`` is the functional
simulator (:class:`~octet.host.device.GoldenDevice`, instant, with its cycle model) and
``"verilator"`` the RTL of the whole accelerator in a Verilator simulation
(:class:`~octet.host.verilator_session.VerilatorSession`). Both are a
:class:`~octet.host.device.Device`, so callers run the same host code on either, best through
``device.call(run_gemm, a, b)``, which runs it next to the device. :func:`accelerator_config`
derives a whole :class:`~octet.config.AcceleratorConfig` from the array size the command line
asks for. Tested by ``tests/test_cli.py`` and ``tests/test_cli_conv.py``.
"""

from contextlib import contextmanager
from dataclasses import replace

from octet.config import AcceleratorConfig

from .device import DeviceError, GoldenDevice

__all__ = ["BACKENDS", "BUS_WIDTHS", "MAX_ARRAY_DIM", "accelerator_config", "open_device"]

BACKENDS = ("golden", "verilator", "board")
BUS_WIDTHS = (4, 8, 16)
MAX_ARRAY_DIM = 64
_MIN_DEPTH, _MAX_DEPTH = 16, 65536


def _depth(total, width):
    """The largest power of two of rows of ``width`` values within ``total`` values."""
    rows = 1 << ((total // width).bit_length() - 1)
    return max(_MIN_DEPTH, min(_MAX_DEPTH, rows))


def accelerator_config(rows=8, cols=8, bus_bytes=8):
    """The configuration of an R x C accelerator: the default one, scaled to the array.

    The default :class:`AcceleratorConfig` is the 8 x 8 design (32 KiB input and weight
    scratchpads, 64 KiB accumulator, 16 MiB device memory). Other sizes keep those capacities
    in bytes: each scratchpad gets the largest power of two of rows that fits (at least 16),
    so every size from 1 x 1 to 64 x 64 builds and simulates in about the same memory.

    Parameters
    ----------
    rows, cols : int
        Array size, 1 to 64 each.
    bus_bytes : int
        AXI data width in bytes: 4, 8 or 16.

    Raises
    ------
    octet.config.ConfigError
        A parameter out of range (the message names it).
    """
    default = AcceleratorConfig()
    checked = AcceleratorConfig(rows=rows, cols=cols, bus_bytes=bus_bytes)
    if (rows, cols) == (default.rows, default.cols):
        return checked
    return replace(checked,
                   input_rows=_depth(default.input_rows * default.rows, rows),
                   weight_rows=_depth(default.weight_rows * default.cols, cols),
                   acc_rows=_depth(default.acc_rows * default.cols, cols))


@contextmanager
def open_device(backend, config=None, progress=True, port=None, baud=None):
    """Open the device of ``backend`` (one of :data:`BACKENDS`) and close it afterwards.

    Parameters
    ----------
    backend : str
        ``"golden"``, ``"verilator"`` or ``"board"``.
    config : AcceleratorConfig, optional
        The accelerator (default: the default configuration).
    progress : bool
        Let slow backends report progress (build, simulation) on stderr.
    port : str, optional
        ``"board"``: the board's serial port (default ``$OCTET_BOARD_PORT``).
    baud : int, optional
        ``"board"``: the UART baud rate of its bitstream (default ``$OCTET_BOARD_BAUD``, else
        :data:`octet.host.board.DEFAULT_BAUD`).

    Yields
    ------
    Device
    """
    config = AcceleratorConfig() if config is None else config
    if backend == "golden":
        yield GoldenDevice(config)
    elif backend == "verilator":
        from .verilator_session import VerilatorSession
        with VerilatorSession(config, progress=progress) as session:
            yield session
    elif backend == "board":
        with _open_board(config, port, baud) as board:
            yield board
    else:
        raise DeviceError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


# --- The "board" backend (octet bitstream, docs/fpga.md) ------------------------------------

def _open_board(config, port=None, baud=None):
    """A :class:`~octet.host.board.BoardDevice` on ``port`` (default ``$OCTET_BOARD_PORT``) at
    ``baud`` (default ``$OCTET_BOARD_BAUD``, else 1000000); its array must be the one
    ``config`` asks for."""
    import os

    from .board import DEFAULT_BAUD, BoardDevice

    port = port or os.environ.get("OCTET_BOARD_PORT")
    if not port:
        raise DeviceError("the board backend needs the board's serial port: --port DEV or "
                          "OCTET_BOARD_PORT (e.g. /dev/ttyUSB0)")
    if baud is None:
        baud = os.environ.get("OCTET_BOARD_BAUD", str(DEFAULT_BAUD))
        if not baud.isdigit():
            raise DeviceError(f"OCTET_BOARD_BAUD must be a baud rate, not {baud!r}")
        baud = int(baud)
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise DeviceError(f"the baud rate must be a positive integer, not {baud!r}")
    board = BoardDevice(port, baud)
    found = board.config
    if (found.rows, found.cols) != (config.rows, config.cols):
        board.close()
        raise DeviceError(f"the board's accelerator has a {found.rows}x{found.cols} array, not "
                          f"{config.rows}x{config.cols}; pass --rows {found.rows} --cols "
                          f"{found.cols}")
    return board
