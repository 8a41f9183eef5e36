"""The torch-free legacy state-dict reader: reads the real wheel, refuses anything else."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from hubcli.errors import UnsafeContentError
from recipes import efficientnet_lite as effnet
from recipes.torch_pickle import LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, TorchPickleError, load_legacy_state_dict

_SYS_INFO = {"protocol_version": LEGACY_PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


class _MakesADirectory:
    """A pickle payload that would run os.makedirs if a loader trusted it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (self.path,)


def _legacy_file(path, payload) -> None:
    with open(path, "wb") as stream:
        for part in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, _SYS_INFO, payload, []):
            pickle.dump(part, stream, protocol=2)


def test_reads_the_wheel_state_dict():
    weights = load_legacy_state_dict(effnet.locate_weights(effnet.MODELS["lite0"]))
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert weights["_conv_stem.weight"].dtype == np.float32
    assert weights["_bn0.num_batches_tracked"].dtype == np.int64
    assert np.all(weights["_bn1.running_var"] > 0)  # real statistics, not zeros or garbage
    effnet.check_weights(weights, effnet.MODELS["lite0"])


def test_refuses_a_pickle_that_names_another_global(tmp_path):
    target = tmp_path / "created-by-pickle"
    weights = tmp_path / "evil.pth"
    _legacy_file(weights, {"w": _MakesADirectory(str(target))})
    with pytest.raises(UnsafeContentError, match="refuses: (os|posix).makedirs"):
        load_legacy_state_dict(weights)
    assert not target.exists()


def test_truncated_file_is_a_clear_error(tmp_path):
    data = effnet.locate_weights(effnet.MODELS["lite0"]).read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) - 1000])
    with pytest.raises(TorchPickleError, match="truncated or inconsistent storage"):
        load_legacy_state_dict(truncated)


def test_other_files_are_rejected_with_their_reason(tmp_path):
    zipped = tmp_path / "new-format.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(TorchPickleError, match="zip-format"):
        load_legacy_state_dict(zipped)
    not_torch = tmp_path / "plain.pkl"
    not_torch.write_bytes(pickle.dumps(42))
    with pytest.raises(TorchPickleError, match="bad magic number"):
        load_legacy_state_dict(not_torch)
