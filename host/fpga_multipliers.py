"""Fitting the design's multipliers into the FPGA's DSP blocks: the rest of the PEs' in logic.

Yosys maps every multiply of the design to an 18 x 18 DSP multiplier (ECP5 ``MULT18X18D``, 156
on the 85F), so an array with more PEs than the device has multipliers left after the rest
of the accelerator (the requantizer's 32 x 32 products, address arithmetic) does not place.
:func:`dsp_census` counts the multipliers the whole design would take (a Yosys run of
``synth_ecp5`` up to its DSP mapping); :func:`lut_multiplier_script` then names the PEs
whose 8 x 8 product is built from logic instead, with Yosys's ``booth`` pass (a radix-4
Booth multiplier in LUTs and carry chains) run on those PE modules only, before synthesis.
The RTL is the same for every PE; only the build script differs.

Tested by ``tests/test_fpga_multipliers.py`` (parsing and choice) and the bitstream builds.
"""

import re
import shutil
import subprocess

__all__ = ["pe_modules", "dsp_census", "lut_multiplier_pes", "lut_multiplier_script"]

_PE_MODULE = re.compile(r"^module \\(\S+\.array\.pe_(\d+)_(\d+))$", re.M)


def pe_modules(rtlil):
    """The processing elements of an Amaranth RTLIL netlist.

    Parameters
    ----------
    rtlil : str
        The text of the RTLIL file Amaranth wrote (one module per PE instance).

    Returns
    -------
    list of (int, int, str)
        ``(row, col, module name)`` for each PE, in row-major order.
    """
    return sorted((int(i), int(j), name) for name, i, j in _PE_MODULE.findall(rtlil))


def dsp_census(build_dir, rtlil_name, yosys, nice=True):
    """How many DSP multipliers ``synth_ecp5`` would use for the design in ``build_dir``.

    Runs Yosys on ``<rtlil_name>.il`` through ``synth_ecp5``'s coarse stage (where multiplies
    become ``MULT18X18D`` cells) and counts them; the log is ``dsp_census.log``.

    Parameters
    ----------
    build_dir : pathlib.Path
    rtlil_name : str
    yosys : str
        The Yosys command.
    nice : bool
        Run at low priority.

    Returns
    -------
    int
    """
    (build_dir / "dsp_census.ys").write_text(
        f"read_rtlil {rtlil_name}.il\n"
        f"synth_ecp5 -top {rtlil_name} -run :map_ram\n"
        f"tee -q -o dsp_census.txt select -count t:MULT18X18D\n")
    command = [yosys, "-q", "-l", "dsp_census.log", "-s", "dsp_census.ys"]
    if nice and shutil.which("nice"):
        command = ["nice", "-n", "10", *command]
    result = subprocess.run(command, cwd=build_dir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    text = (build_dir / "dsp_census.txt").read_text() if result.returncode == 0 else ""
    match = re.search(r"(\d+) objects", text)
    if not match:
        raise RuntimeError(f"the DSP census failed in {build_dir} (see dsp_census.log)")
    return int(match[1])


def lut_multiplier_pes(pes, needed, available, pe_dsp=None):
    """The PEs to build in logic so that ``needed`` DSP multipliers fit in ``available``.

    Parameters
    ----------
    pes : list of (int, int, str)
        From :func:`pe_modules`; each PE's product takes one DSP multiplier.
    needed : int
        DSP multipliers of the whole design with every PE in a DSP (:func:`dsp_census`).
    available : int
        DSP multipliers of the device.
    pe_dsp : int, optional
        At most this many PE products in DSPs (default: as many as fit).

    Returns
    -------
    list of (int, int, str)
        The last PEs in row-major order (the bottom rows), as many as needed, or none.

    Raises
    ------
    ValueError
        When even all PEs in logic would not fit (the rest of the design needs too many).
    """
    if needed - len(pes) > available:
        raise ValueError(f"the design needs {needed} DSP multipliers, {needed - len(pes)} "
                         f"outside the array, and the device has {available}")
    excess = max(needed - available, 0 if pe_dsp is None else len(pes) - pe_dsp, 0)
    return pes[len(pes) - excess:] if excess else []


def lut_multiplier_script(pes):
    """Yosys commands (after reading the RTLIL) that build the products of ``pes`` in logic.

    Parameters
    ----------
    pes : list of (int, int, str)

    Returns
    -------
    str
        ``proc`` on those PE modules (``booth`` skips modules with processes), then ``booth``
        selecting each one's ``$mul`` cell; ``""`` for no PEs.
    """
    if not pes:
        return ""
    names = [name for _, _, name in pes]
    return ("proc " + " ".join(names) + "\n" +
            "booth " + " ".join(f"{name}/t:$mul" for name in names))
