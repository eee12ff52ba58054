"""The Octet model file (``.octm``): a versioned, checksummed container of named tensors.

Layout of format version 1 (all integers little-endian)::

    offset       size  field
    0            8     magic b"OCTETMDL"
    8            4     format version, uint32 (1)
    12           4     header length H, uint32
    16           H     header: UTF-8 JSON object (below)
    16 + H       pad   zero bytes up to the next multiple of 64 (the data start)
    data start   D     tensor data; each tensor at data start + its offset (a multiple of 64),
                       C order, little-endian, zero padding between tensors
    end - 32     32    SHA-256 of every byte before it

The header holds ``kind`` (what the tensors are, e.g. ``"octet-transformer-fp32"``),
``config`` (the model configuration), ``metadata`` (free-form: training command, loss,
corpus), ``data_size`` (D) and ``tensors``: a list of ``{"name", "dtype", "shape", "offset",
"nbytes"}`` with dtype one of :data:`DTYPES`. Readers reject anything they do not understand
with a :class:`ModelFileError` naming the file and the problem: missing file, wrong magic,
unsupported version, truncation, checksum mismatch, malformed header, tensor table entries
that are out of bounds, overlap or disagree with their shape, and (in :func:`load_model`)
tensors that do not match the configuration.

Tested by ``tests/test_quant_model_file.py`` (round trip, every corruption above).
"""

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from .model import Model, ModelConfig, ModelError

__all__ = ["MAGIC", "FORMAT_VERSION", "DTYPES", "FP32_KIND", "DEFAULT_MODEL", "ModelFileError",
           "write_tensors", "read_tensors", "save_model", "load_model"]

MAGIC = b"OCTETMDL"
FORMAT_VERSION = 1
ALIGN = 64
CHECKSUM_BYTES = 32
FP32_KIND = "octet-transformer-fp32"
#: Dtype names allowed in the tensor table and their little-endian NumPy dtypes.
DTYPES = {"float32": "<f4", "float64": "<f8", "int8": "i1", "uint8": "u1", "int16": "<i2",
          "int32": "<i4", "int64": "<i8"}
#: The trained model shipped with Octet.
DEFAULT_MODEL = Path(__file__).parent / "models" / "octet-demo-v1.octm"

_PREFIX = struct.Struct("<8sII")


class ModelFileError(ValueError):
    """A model file that cannot be read; the message names the file and the problem."""


def _align(n):
    return -(-n // ALIGN) * ALIGN


def write_tensors(path, kind, config, tensors, metadata=None):
    """Write ``tensors`` (name -> array) to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    table, offset = [], 0
    arrays = []
    for name, value in tensors.items():
        value = np.asarray(value)
        dtype_name = str(value.dtype)
        if dtype_name not in DTYPES:
            raise ModelFileError(f"tensor {name!r} has dtype {dtype_name}, which the model file "
                                 f"format does not support ({', '.join(DTYPES)})")
        data = np.ascontiguousarray(value, dtype=np.dtype(DTYPES[dtype_name])).tobytes()
        table.append({"name": name, "dtype": dtype_name, "shape": list(value.shape),
                      "offset": offset, "nbytes": len(data)})
        arrays.append((offset, data))
        offset = _align(offset + len(data))
    header = {"kind": kind, "config": config, "metadata": metadata or {},
              "data_size": offset, "tensors": table}
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    data_start = _align(_PREFIX.size + len(header_bytes))
    buf = bytearray(data_start + offset)
    buf[:_PREFIX.size] = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes))
    buf[_PREFIX.size:_PREFIX.size + len(header_bytes)] = header_bytes
    for off, data in arrays:
        buf[data_start + off:data_start + off + len(data)] = data
    buf += hashlib.sha256(buf).digest()
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(buf)
        os.replace(tmp, path)
    except OSError as exc:
        raise ModelFileError(f"cannot write model file {path}: {exc}") from None


def read_tensors(path, kind=None):
    """Read a model file: ``(header, tensors)``; ``kind`` if given must match the header's."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc}") from None

    def fail(problem):
        raise ModelFileError(f"model file {path}: {problem}")

    if len(raw) < _PREFIX.size:
        fail(f"truncated: {len(raw)} bytes is shorter than the {_PREFIX.size}-byte prefix")
    magic, version, header_len = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        fail(f"not an Octet model file (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        fail(f"format version {version} is not supported (this Octet reads version "
             f"{FORMAT_VERSION})")
    data_start = _align(_PREFIX.size + header_len)
    if len(raw) < data_start + CHECKSUM_BYTES:
        fail(f"truncated: {len(raw)} bytes, but the header alone needs {data_start} bytes "
             f"plus the {CHECKSUM_BYTES}-byte checksum")
    try:
        header = json.loads(raw[_PREFIX.size:_PREFIX.size + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"header is not valid UTF-8 JSON ({exc})")
    if not isinstance(header, dict):
        fail("header is not a JSON object")
    for key, typ in (("kind", str), ("config", dict), ("metadata", dict), ("data_size", int),
                     ("tensors", list)):
        if not isinstance(header.get(key), typ):
            fail(f"header field {key!r} is missing or not a {typ.__name__}")
    expected_len = data_start + header["data_size"] + CHECKSUM_BYTES
    if len(raw) < expected_len:
        fail(f"truncated: {len(raw)} bytes, the header describes {expected_len}")
    if len(raw) > expected_len:
        fail(f"{len(raw) - expected_len} unexpected bytes after the checksum")
    body, stored = raw[:-CHECKSUM_BYTES], raw[-CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest() != stored:
        fail("checksum mismatch: the file is corrupt (SHA-256 of the contents differs from "
             "the stored one)")
    if kind is not None and header["kind"] != kind:
        fail(f"holds {header['kind']!r}, expected {kind!r}")

    tensors, spans = {}, []
    for i, entry in enumerate(header["tensors"]):
        if not isinstance(entry, dict):
            fail(f"tensor table entry {i} is not an object")
        name = entry.get("name")
        if not isinstance(name, str):
            fail(f"tensor table entry {i} has no name")
        if name in tensors:
            fail(f"tensor {name!r} appears twice")
        dtype = entry.get("dtype")
        if dtype not in DTYPES:
            fail(f"tensor {name!r} has unknown dtype {dtype!r}")
        shape, offset, nbytes = entry.get("shape"), entry.get("offset"), entry.get("nbytes")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            fail(f"tensor {name!r} has a malformed shape {shape!r}")
        if not (isinstance(offset, int) and isinstance(nbytes, int)) or offset < 0 or nbytes < 0:
            fail(f"tensor {name!r} has a malformed offset or size")
        itemsize = np.dtype(DTYPES[dtype]).itemsize
        if nbytes != int(np.prod(shape, dtype=np.int64)) * itemsize:
            fail(f"tensor {name!r}: {nbytes} bytes do not hold shape {shape} of {dtype}")
        if offset % ALIGN or offset + nbytes > header["data_size"]:
            fail(f"tensor {name!r} at offset {offset} (+{nbytes} bytes) lies outside the "
                 f"{header['data_size']}-byte data section or is misaligned")
        spans.append((offset, offset + nbytes, name))
        start = data_start + offset
        array = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]), count=nbytes // itemsize,
                              offset=start).reshape(shape)
        tensors[name] = array.astype(np.dtype(dtype), copy=True)
    spans.sort()
    for (_, end_a, name_a), (start_b, _, name_b) in zip(spans, spans[1:], strict=False):
        if start_b < end_a:
            fail(f"tensors {name_a!r} and {name_b!r} overlap")
    return header, tensors


def save_model(model: Model, path):
    """Write an fp32 :class:`~octet.quant.model.Model` (config, parameters, metadata)."""
    write_tensors(path, FP32_KIND, model.config.to_dict(), model.params, model.metadata)


def load_model(path=None):
    """Read an fp32 model (default: the shipped :data:`DEFAULT_MODEL`)."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    header, tensors = read_tensors(path, FP32_KIND)
    try:
        config = ModelConfig.from_dict(header["config"])
        return Model(config, tensors, header.get("metadata"))
    except (ModelError, TypeError) as exc:
        raise ModelFileError(f"model file {path}: tensors do not match the configuration: "
                             f"{exc}") from None
