"""The torch-free reader of legacy PyTorch files: exact tensors, strided views, and refusals."""

import collections
import os
import pickle
import shutil
import sys
import types

import numpy as np
import pytest

from sr_keras.cli import main as cli_main
from sr_keras.io.torch_legacy import LEGACY_MAGIC, LEGACY_PROTOCOL, TorchFileError, load_state_dict

REGIONS = ("R1", "R2", "R3")


def _released(folder, region):
    (path,) = folder.glob(f"BOE-{region}_*.model")
    return path


@pytest.mark.parametrize("region", REGIONS)
def test_released_files_give_exactly_the_reference_tensors(pirm_release_dir, reference_npz, region):
    state = load_state_dict(_released(pirm_release_dir, region))
    prefix = f"weights/{region}/"
    with np.load(reference_npz) as reference:
        expected = {k[len(prefix):]: reference[k] for k in reference.files if k.startswith(prefix)}
    assert sorted(state) == sorted(expected) and len(state) == 68
    for name, array in expected.items():
        assert state[name].dtype == array.dtype == np.float32, name
        assert state[name].shape == array.shape, name
        np.testing.assert_array_equal(state[name], array, err_msg=name)
    assert sum(a.size for a in state.values()) == 281_084


class _Storage:
    def __init__(self, kind, key, data):
        self.kind, self.key, self.data = kind, key, data


class _Tensor:
    """Pickles as PyTorch 0.4 pickles a tensor: a call of _rebuild_tensor_v2 on a persistent storage."""

    rebuild = None  # set to the fake torch._utils._rebuild_tensor_v2 while writing

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return type(self).rebuild, self.args


@pytest.fixture
def write_legacy(monkeypatch):
    """Writes a legacy-format file as torch.save did, with stand-ins for the torch names (torch not needed)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in ("FloatStorage", "LongStorage", "DoubleStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled here, never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    monkeypatch.setattr(_Tensor, "rebuild", _rebuild_tensor_v2)

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.data.size, None)
            return None

    def write(path, state, storages):
        with open(path, "wb") as file:
            for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": 1001, "little_endian": True}):
                pickle.dump(header, file, protocol=2)
            Writer(file, protocol=2).dump(state)
            keys = sorted(s.key for s in storages)
            pickle.dump(keys, file, protocol=2)
            for storage in sorted(storages, key=lambda s: s.key):
                file.write(storage.data.size.to_bytes(8, "little") + storage.data.tobytes())
        return path

    return write


def test_strided_views_offsets_shared_storages_and_dtypes(tmp_path, write_legacy):
    floats = _Storage("FloatStorage", "100", np.arange(24, dtype="<f4"))
    longs = _Storage("LongStorage", "7", np.array([7, -3], dtype="<i8"))
    doubles = _Storage("DoubleStorage", "8", np.array([0.25, 1e300], dtype="<f8"))
    state = collections.OrderedDict(
        transposed=_Tensor(floats, 2, (3, 4), (1, 3)),  # a .t() view starting at element 2
        head=_Tensor(floats, 0, (5,), (1,)),  # shares the storage
        scalar=_Tensor(longs, 1, (), ()),
        doubles=_Tensor(doubles, 0, (2,), (1,)),
        empty=_Tensor(floats, 0, (0, 3), (3, 1)),
    )
    path = write_legacy(tmp_path / "synthetic.pth", state, [floats, longs, doubles])
    loaded = load_state_dict(path)
    assert list(loaded) == ["transposed", "head", "scalar", "doubles", "empty"]
    np.testing.assert_array_equal(loaded["transposed"], np.arange(2, 14, dtype="float32").reshape(4, 3).T)
    np.testing.assert_array_equal(loaded["head"], np.arange(5, dtype="float32"))
    assert loaded["scalar"] == -3 and loaded["scalar"].dtype == np.int64 and loaded["scalar"].shape == ()
    assert loaded["doubles"].dtype == np.float64 and loaded["doubles"][1] == 1e300
    assert loaded["empty"].shape == (0, 3)
    assert loaded["transposed"].flags.writeable and loaded["transposed"].flags.c_contiguous


def test_a_view_past_its_storage_is_refused(tmp_path, write_legacy):
    floats = _Storage("FloatStorage", "1", np.arange(6, dtype="<f4"))
    path = write_legacy(tmp_path / "bad.pth", {"w": _Tensor(floats, 2, (2, 3), (3, 1))}, [floats])
    with pytest.raises(TorchFileError, match=r"bad\.pth: a tensor of size \(2, 3\) reaches outside its storage"):
        load_state_dict(path)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_classes_other_than_a_state_dicts_are_never_constructed(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as file:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(header, file, protocol=2)
        pickle.dump({"w": _Payload(marker)}, file, protocol=2)
    with pytest.raises(TorchFileError, match=r"evil\.pth: refuses to load (posix|nt)\.system"):
        load_state_dict(path)
    assert not marker.exists()


def test_truncated_zip_and_foreign_files_are_one_line_errors(pirm_release_dir, tmp_path):
    data = _released(pirm_release_dir, "R1").read_bytes()
    (tmp_path / "cut.model").write_bytes(data[:-1000])
    with pytest.raises(TorchFileError, match=r"cut\.model: truncated or corrupt: storage '\d+' should hold \d+"):
        load_state_dict(tmp_path / "cut.model")
    (tmp_path / "zip.pth").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(TorchFileError, match=r"zip\.pth: a zip-format PyTorch file"):
        load_state_dict(tmp_path / "zip.pth")
    (tmp_path / "text.model").write_text("hello\n")
    with pytest.raises(TorchFileError, match=r"text\.model: cannot read the magic number"):
        load_state_dict(tmp_path / "text.model")
    (tmp_path / "long.model").write_bytes(data + b"\0")
    with pytest.raises(TorchFileError, match=r"long\.model: unexpected bytes after the last storage"):
        load_state_dict(tmp_path / "long.model")


def test_import_pirm_cli_reads_the_released_file_without_torch(pirm_release_dir, reference_npz, tmp_path,
                                                               monkeypatch, capsys):
    import keras

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    source = tmp_path / "r2.model"
    shutil.copy(_released(pirm_release_dir, "R2"), source)
    out = tmp_path / "r2.keras"
    assert cli_main(["import-pirm", str(source), "--output", str(out)]) == 0
    assert "281,084 parameters" in capsys.readouterr().out
    reference = np.load(reference_npz)
    y = keras.saving.load_model(out, compile=False)(reference["inputs/lr_small1"][None]).numpy()[0]
    assert np.abs(y - reference["outputs/R2/lr_small1/noise0"]).max() <= 2e-4

    source.write_bytes(source.read_bytes()[:5000])
    assert cli_main(["import-pirm", str(source), "--output", str(tmp_path / "bad.keras")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "r2.model: cannot read the state dict" in err
    assert not (tmp_path / "bad.keras").exists()
