"""The quantized model an inference run uses: read a model file, prune, calibrate, quantize.

:func:`prepare_model` accepts either kind of ``.octm`` file: an fp32 model (the shipped one by
default) is optionally pruned (:data:`SPARSITY`: ``"50"`` is Wanda 50% unstructured, ``"2:4"``
structured, both with the dense model's calibration activations, as ``octet eval`` does), then
calibrated on the calibration split of the standard-library corpus and quantized to W8A8
exactly like :func:`octet.quant.evaluate.evaluate`; a saved W8A8 model
(:func:`~octet.quant.quantize.save_quantized`) is used as it is. Every problem with the file
is a :class:`~octet.quant.model_file.ModelFileError` naming it. Tested by
``tests/test_runtime.py``.
"""

import json
import struct
from pathlib import Path

from .evaluate import calibration_windows, single_thread_blas
from .model_file import DEFAULT_MODEL, FP32_KIND, MAGIC, ModelFileError, load_model
from .prune import prune_model
from .quantize import W8A8_KIND, calibrate, load_quantized, quantize

__all__ = ["SPARSITY", "PreparedModel", "prepare_model", "file_kind"]

#: ``--sparsity`` choices: none, Wanda 50% unstructured, 2:4 structured (Wanda scores).
SPARSITY = {"none": None, "50": "wanda", "2:4": "2:4"}


class PreparedModel:
    """A :class:`~octet.quant.quantize.QuantizedModel` and how it was made.

    Attributes
    ----------
    qmodel : QuantizedModel
    path : Path
    kind : str
        The file's kind (fp32 or W8A8).
    sparsity : str
        One of :data:`SPARSITY`.
    description : str
        One line for reports ("octet-demo-v1.octm, W8A8, 2:4 pruned").
    """

    def __init__(self, qmodel, path, kind, sparsity):
        self.qmodel = qmodel
        self.path = Path(path)
        self.kind = kind
        self.sparsity = sparsity
        how = {"none": "dense", "50": "50% pruned (Wanda)", "2:4": "2:4 pruned"}[sparsity]
        source = "saved W8A8" if kind == W8A8_KIND else "W8A8"
        self.description = f"{self.path.name}, {source}, {how}"


def file_kind(path):
    """The ``kind`` in a model file's header, or None if the header cannot be read (the
    full reader then reports the problem)."""
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(16)
            if len(prefix) < 16:
                return None
            magic, _, length = struct.unpack("<8sII", prefix)
            if magic != MAGIC or length > 1 << 24:
                return None
            kind = json.loads(handle.read(length).decode("utf-8")).get("kind")
            return kind if isinstance(kind, str) else None
    except (OSError, ValueError, AttributeError):
        return None


def prepare_model(path=None, sparsity="none", log=None):
    """The quantized model of ``path`` (default: the shipped model) with ``sparsity``.

    Raises
    ------
    ModelFileError
        The file is missing, corrupt, of another kind, or does not match its configuration;
        or ``sparsity`` is asked of an already quantized model.
    ValueError
        ``sparsity`` is not one of :data:`SPARSITY`.
    """
    if sparsity not in SPARSITY:
        raise ValueError(f"sparsity must be one of {', '.join(SPARSITY)}, not {sparsity!r}")
    path = Path(path) if path is not None else DEFAULT_MODEL
    log = log or (lambda message: None)
    kind = file_kind(path)
    if kind == W8A8_KIND:
        if sparsity != "none":
            raise ModelFileError(f"model file {path} is already quantized (W8A8); pruning "
                                 f"(--sparsity {sparsity}) needs an fp32 model file")
        return PreparedModel(load_quantized(path), path, kind, sparsity)
    model = load_model(path)          # every other kind or problem: its own error
    with single_thread_blas():
        windows = calibration_windows(context=model.config.context)
        log(f"calibrating and quantizing {path.name} ({windows.size} calibration bytes)")
        calibration = calibrate(model, windows)
        method = SPARSITY[sparsity]
        if method is not None:
            model = prune_model(model, method, calibration)
            calibration = calibrate(model, windows)
        qmodel = quantize(model, calibration)
    return PreparedModel(qmodel, path, FP32_KIND, sparsity)
