"""The standard-library corpus: deterministic, disjoint splits by file."""

import numpy as np
import pytest

from octet.quant import corpus


@pytest.fixture(scope="module")
def files():
    return {split: corpus.split_files(split) for split in corpus.SPLITS}


def test_splits_are_disjoint_and_cover_the_corpus(files):
    sets = {split: set(names) for split, names in files.items()}
    assert all(sets.values())
    assert not sets["train"] & sets["heldout"]
    assert not sets["train"] & sets["calibration"]
    assert not sets["calibration"] & sets["heldout"]
    assert set.union(*sets.values()) == set(corpus.list_files())


def test_split_depends_only_on_the_path():
    # Pinned: changing the hash rule silently changes the held-out set and every result.
    assert corpus.split_of("argparse.py") == "heldout"
    assert corpus.split_of("fileinput.py") == "calibration"
    assert corpus.split_of("os.py") == "train"


def test_excludes_tests_and_installed_packages(files):
    for names in files.values():
        for name in names:
            parts = name.split("/")
            assert not set(parts[:-1]) & corpus.EXCLUDED_DIRS, name
            assert not parts[-1].startswith("_sysconfigdata"), name


def test_load_split_is_deterministic_bytes(files):
    data = corpus.load_split("calibration")
    assert isinstance(data, bytes)
    assert data == corpus.load_split("calibration")
    assert data.startswith(corpus.SEPARATOR)
    assert data.count(corpus.SEPARATOR) == len(files["calibration"])


def test_fixed_windows():
    data = bytes(range(256)) * 10
    w = corpus.fixed_windows(data, 4, 100)
    assert w.shape == (4, 101) and w.dtype == np.uint8
    stride = (len(data) - 101) // 3           # evenly spread, in order, inside the data
    for i in range(4):
        assert bytes(w[i]) == data[i * stride:i * stride + 101]
    with pytest.raises(corpus.CorpusError, match="cannot hold"):
        corpus.fixed_windows(b"abc", 2, 10)


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown corpus split"):
        corpus.split_files("validation")
