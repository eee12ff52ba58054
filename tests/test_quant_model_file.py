"""The .octm model file: round trip, the shipped model, and every kind of damaged file."""

import hashlib
import json
import struct

import numpy as np
import pytest

from octet.quant import model_file
from octet.quant.model import Model, ModelConfig, init_params
from octet.quant.model_file import ModelFileError, load_model, read_tensors, save_model

TINY = ModelConfig(context=16, d_model=16, n_layer=1, n_head=2, d_ff=32)


@pytest.fixture
def saved(tmp_path):
    model = Model(TINY, init_params(TINY, seed=3), {"note": "test"})
    path = tmp_path / "m.octm"
    save_model(model, path)
    return model, path


def _patch(path, offset, data, rechecksum=False):
    raw = bytearray(path.read_bytes())
    raw[offset:offset + len(data)] = data
    if rechecksum:
        raw[-32:] = hashlib.sha256(raw[:-32]).digest()
    path.write_bytes(bytes(raw))


def test_round_trip(saved):
    model, path = saved
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.metadata == {"note": "test"}
    assert loaded.params.keys() == model.params.keys()
    for name, value in model.params.items():
        assert loaded.params[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[name], value)


def test_layout_is_aligned_and_little_endian(saved):
    _, path = saved
    raw = path.read_bytes()
    magic, version, header_len = struct.unpack_from("<8sII", raw)
    assert (magic, version) == (b"OCTETMDL", 1)
    header = json.loads(raw[16:16 + header_len])
    start = -(-(16 + header_len) // 64) * 64
    entry = next(t for t in header["tensors"] if t["name"] == "tok_emb")
    assert entry["offset"] % 64 == 0
    first = np.frombuffer(raw, "<f4", 1, start + entry["offset"])[0]
    assert first == load_model(path).params["tok_emb"].reshape(-1)[0]
    assert raw[-32:] == hashlib.sha256(raw[:-32]).digest()


def test_integer_tensors_round_trip(tmp_path):
    tensors = {"a": np.arange(-5, 5, dtype=np.int8).reshape(2, 5),
               "b": np.array([2**40, -3], dtype=np.int64), "c": np.zeros((0, 3), np.int32)}
    model_file.write_tensors(tmp_path / "t.octm", "test-kind", {"x": 1}, tensors)
    header, loaded = read_tensors(tmp_path / "t.octm", "test-kind")
    assert header["config"] == {"x": 1}
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded[name], value)


def test_shipped_model_loads():
    if not model_file.DEFAULT_MODEL.exists():
        pytest.skip("no shipped model file")
    model = load_model()
    assert model.config == ModelConfig()
    assert 800_000 < model.num_params < 1_200_000
    assert model.metadata["name"] == "octet-demo-v1"


@pytest.mark.parametrize("damage, message", [
    ("missing", "does not exist"),
    ("empty", "truncated"),
    ("magic", "not an Octet model file"),
    ("version", "format version 7 is not supported"),
    ("truncated", "truncated"),
    ("extra", "unexpected bytes after the checksum"),
    ("flip", "checksum mismatch"),
    ("header", "header is not valid UTF-8 JSON"),
])
def test_damaged_files_raise_clear_errors(saved, damage, message):
    _, path = saved
    raw = path.read_bytes()
    if damage == "missing":
        path = path.with_name("nope.octm")
    elif damage == "empty":
        path.write_bytes(b"OCT")
    elif damage == "magic":
        _patch(path, 0, b"GGUFxxxx")
    elif damage == "version":
        _patch(path, 8, struct.pack("<I", 7))
    elif damage == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif damage == "extra":
        path.write_bytes(raw + b"\0")
    elif damage == "flip":
        _patch(path, len(raw) - 100, bytes([raw[-100] ^ 1]))
    elif damage == "header":
        _patch(path, 16, b"\xff")
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_tensor_table_errors(tmp_path):
    path = tmp_path / "t.octm"
    model_file.write_tensors(path, "k", {}, {"a": np.zeros(4, np.float32)})
    raw = path.read_bytes()
    header_len = struct.unpack_from("<I", raw, 12)[0]
    header = json.loads(raw[16:16 + header_len])
    header["tensors"][0]["shape"] = [5]
    text = json.dumps(header).encode()
    assert len(text) <= header_len
    _patch(path, 16, text.ljust(header_len), rechecksum=True)
    with pytest.raises(ModelFileError, match="16 bytes do not hold shape"):
        read_tensors(path)


def test_kind_and_config_mismatch(tmp_path):
    path = tmp_path / "t.octm"
    model_file.write_tensors(path, "something-else", TINY.to_dict(), {})
    with pytest.raises(ModelFileError, match="expected 'octet-transformer-fp32'"):
        load_model(path)
    params = init_params(TINY)
    params["blocks.0.mlp.up.weight"] = np.zeros((16, 31), np.float32)
    model_file.write_tensors(path, model_file.FP32_KIND, TINY.to_dict(), params)
    with pytest.raises(ModelFileError, match=r"mlp\.up\.weight.*shape \(16, 31\)"):
        load_model(path)
    del params["blocks.0.mlp.up.weight"]
    model_file.write_tensors(path, model_file.FP32_KIND, TINY.to_dict(), params)
    with pytest.raises(ModelFileError, match="missing parameter 'blocks.0.mlp.up.weight'"):
        load_model(path)
    bad = dict(TINY.to_dict(), n_head=3)
    model_file.write_tensors(path, model_file.FP32_KIND, bad, init_params(TINY))
    with pytest.raises(ModelFileError, match="not divisible by n_head"):
        load_model(path)
