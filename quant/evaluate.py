"""Bits per byte of the model on held-out text: fp32, W8A8, and W8A8 after pruning.

The held-out text is the ``heldout`` split of :mod:`octet.quant.corpus` (standard-library files
never seen in training). :func:`evaluate` scores ``windows`` fixed windows of ``context`` + 1
bytes spread evenly over it: each window is one prefill from an empty cache, and every byte
after the first is predicted (so 96 windows score 96 * 256 = 24576 bytes). Calibration uses
fixed windows of the ``calibration`` split.

Variants (the keys of the result):

* ``fp32``: the NumPy fp32 reference (:func:`octet.quant.model.forward`).
* ``w8a8``: :func:`octet.quant.quantize.quantize` run by the integer reference
  (:mod:`octet.quant.integer_reference`), i.e. exactly the accelerator's arithmetic.
* ``w8a8_sparse50``: Wanda 50% unstructured pruning, re-calibrated, then W8A8.
* ``w8a8_2of4``: 2:4 structured pruning (Wanda scores), re-calibrated, then W8A8.
* with ``extended=True`` also ``w8a8_magnitude50``, ``fp32_sparse50`` and ``fp32_2of4``.

Tested by ``tests/test_quant_eval.py``.
"""

import contextlib
import ctypes
import time

import numpy as np

from . import corpus
from .integer_reference import IntegerTransformer, fast_gemm
from .model import Model, bits_per_byte
from .model_file import load_model
from .prune import prune_model
from .quantize import calibrate, quantize

__all__ = ["VARIANTS", "EXTENDED_VARIANTS", "DEFAULT_WINDOWS", "CALIBRATION_WINDOWS",
           "single_thread_blas", "heldout_windows", "calibration_windows",
           "integer_bits_per_byte", "evaluate", "markdown_table"]

VARIANTS = ("fp32", "w8a8", "w8a8_sparse50", "w8a8_2of4")
EXTENDED_VARIANTS = VARIANTS + ("w8a8_magnitude50", "fp32_sparse50", "fp32_2of4")
DEFAULT_WINDOWS = 96
CALIBRATION_WINDOWS = 32

_DESCRIPTIONS = {
    "fp32": "fp32 reference (NumPy)",
    "w8a8": "W8A8 (integer reference = accelerator arithmetic)",
    "w8a8_sparse50": "W8A8 + 50% unstructured (Wanda)",
    "w8a8_2of4": "W8A8 + 2:4 structured (Wanda scores)",
    "w8a8_magnitude50": "W8A8 + 50% unstructured (magnitude)",
    "fp32_sparse50": "fp32 + 50% unstructured (Wanda)",
    "fp32_2of4": "fp32 + 2:4 structured",
}


@contextlib.contextmanager
def single_thread_blas():
    """Run the block with one OpenBLAS thread, best effort (Linux, NumPy's bundled OpenBLAS).

    Evaluation multiplies many small matrices (M <= 256), where OpenBLAS's worker threads cost
    more than they gain, and on a machine whose cores are busy they spin: a 4x slowdown was
    measured with two cores shared with simulations. Elsewhere this does nothing.
    """
    setter = getter = None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", "_64_", ""):
                    if hasattr(lib, f"{prefix}_set_num_threads{suffix}"):
                        setter = getattr(lib, f"{prefix}_set_num_threads{suffix}")
                        getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                        break
                if setter:
                    break
            if setter:
                break
    except OSError:
        setter = None
    if setter is None:
        yield
        return
    previous = getter() if getter else None
    setter(1)
    try:
        yield
    finally:
        if previous:
            setter(previous)


def heldout_windows(count=DEFAULT_WINDOWS, context=256):
    return corpus.fixed_windows(corpus.load_split("heldout"), count, context)


def calibration_windows(count=CALIBRATION_WINDOWS, context=256):
    return corpus.fixed_windows(corpus.load_split("calibration"), count, context)[:, :-1]


def integer_bits_per_byte(qmodel, windows, gemm=fast_gemm):
    """Bits per byte of a quantized model on ``windows`` (N, T + 1), via the integer reference."""
    runner = IntegerTransformer(qmodel, gemm)
    logits = np.stack([runner.dequantize_logits(runner.prefill(w[:-1])[0]) for w in windows])
    return bits_per_byte(logits, windows[:, 1:])


def _fp32_bits_per_byte(model, windows, batch=16):
    total = 0.0
    for s in range(0, len(windows), batch):
        w = windows[s:s + batch]
        total += bits_per_byte(model.forward(w[:, :-1]), w[:, 1:]) * len(w)
    return total / len(windows)


def evaluate(model: Model | str | None = None, windows=DEFAULT_WINDOWS, extended=False,
             log=None):
    """Bits per byte of every variant: ``{"metric": "bits_per_byte", "fp32": ..., ...}``."""
    log = log or (lambda msg: None)
    if not isinstance(model, Model):
        model = load_model(model)
    ctx = model.config.context
    held = heldout_windows(windows, ctx)
    calib = calibration_windows(CALIBRATION_WINDOWS, ctx)
    results = {"metric": "bits_per_byte"}
    timing = {}

    def timed(key, fn):
        start = time.monotonic()
        results[key] = float(fn())
        timing[key] = time.monotonic() - start
        log(f"{key:<18} {results[key]:.4f} bits/byte  ({_DESCRIPTIONS[key]}, "
            f"{timing[key]:.1f} s)")

    with single_thread_blas():
        _evaluate_variants(model, held, calib, extended, timed)
    info = {"windows": windows, "bytes_scored": int(held[:, 1:].size),
            "calibration_tokens": int(calib.size), "seconds": timing}
    return results, info


def _evaluate_variants(model, held, calib, extended, timed):
    timed("fp32", lambda: _fp32_bits_per_byte(model, held))
    dense_cal = calibrate(model, calib)
    timed("w8a8", lambda: integer_bits_per_byte(quantize(model, dense_cal), held))
    pruned = {"sparse50": prune_model(model, "wanda", dense_cal),
              "2of4": prune_model(model, "2:4", dense_cal)}
    if extended:
        pruned["magnitude50"] = prune_model(model, "magnitude")
    for key, variant in pruned.items():
        timed("w8a8_" + key,
              lambda v=variant: integer_bits_per_byte(quantize(v, calibrate(v, calib)), held))
    if extended:
        for key in ("sparse50", "2of4"):
            timed("fp32_" + key, lambda v=pruned[key]: _fp32_bits_per_byte(v, held))


def markdown_table(results):
    """The results as a Markdown table (variant, bits per byte, change against fp32)."""
    fp32 = results["fp32"]
    lines = ["| variant | bits per byte | vs fp32 |", "|---|---:|---:|"]
    for key in EXTENDED_VARIANTS:
        if key in results:
            rel = "" if key == "fp32" else f"{(results[key] / fp32 - 1) * 100:+.2f}%"
            lines.append(f"| {_DESCRIPTIONS[key]} (`{key}`) | {results[key]:.4f} | {rel} |")
    return "\n".join(lines)
