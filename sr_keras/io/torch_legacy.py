"""Read PyTorch's legacy (non-zip, PyTorch <= 1.5) `torch.save` files without torch.

The authors' PIRM 2018 generators are in this format. A file is five things
back to back: four pickles (a magic number, the protocol version 1001, a
dict of system facts such as endianness, then the saved object), a fifth
pickle listing the storage keys, and then every storage in that order as an
8-byte little-endian element count followed by its raw little-endian bytes.
In the object pickle a tensor is a call to `torch._utils._rebuild_tensor_v2`
whose first argument is a persistent id naming a storage.

Unpickling runs whatever callables a file names, so the unpickler here knows
only the handful of names a state dict needs and refuses everything else:
reading an untrusted file constructs nothing but dicts, tuples and arrays.
"""

import collections
import pickle

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK\x03\x04"

# torch storage class -> numpy dtype of its elements (little-endian, as the files are written)
STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class TorchFileError(ValueError):
    """A file that is not a legacy PyTorch state dict this reader can take apart safely."""


class _StorageType:
    """Stands in for `torch.FloatStorage` and friends: only the element dtype matters."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _PendingTensor:
    """A tensor whose storage bytes come after the pickle; materialised once they are read."""

    def __init__(self, storage_key, offset, size, stride):
        self.storage_key, self.offset = storage_key, offset
        self.size, self.stride = size, stride

    def materialise(self, storages, path):
        storage = storages.get(self.storage_key) if isinstance(self.storage_key, str) else None
        if storage is None:
            raise TorchFileError(f"{path}: a tensor refers to an unknown storage {self.storage_key!r:.40}")
        if 0 in self.size:
            return np.zeros(self.size, storage.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= storage.size:
            raise TorchFileError(f"{path}: a tensor of size {self.size} reaches outside its storage "
                                 f"({storage.size} elements)")
        strides = tuple(s * storage.itemsize for s in self.stride)
        return np.lib.stride_tricks.as_strided(storage[self.offset:], self.size, strides, writeable=False).copy()


def _ints(values):
    if not (isinstance(values, tuple) and all(type(v) is int for v in values)):
        raise ValueError(f"malformed tensor record: expected a tuple of ints, got {values!r:.40}")
    return values


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_unused):
    """Stands in for `torch._utils._rebuild_tensor_v2` (requires_grad, hooks and later arguments ignored)."""
    (storage_offset,) = _ints((storage_offset,))
    size, stride = _ints(size), _ints(stride)
    if len(size) != len(stride):
        raise ValueError(f"malformed tensor record: size {size} and stride {stride} differ in length")
    return _PendingTensor(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only OrderedDict, the tensor rebuild function and the storage types."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path
        self.storage_specs = {}  # key -> (dtype, element count)

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise TorchFileError(f"{self.path}: refuses to load {module}.{name}: only plain state dicts of tensors "
                             "can be read without torch")

    def persistent_load(self, pid):
        # ("storage", storage type, key, location such as "cpu", element count, view metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and type(pid[4]) is int and pid[4] >= 0):
            raise TorchFileError(f"{self.path}: unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, count, view = pid
        if view is not None:
            raise TorchFileError(f"{self.path}: storage views are not supported")
        if self.storage_specs.setdefault(key, (storage_type.dtype, count)) != (storage_type.dtype, count):
            raise TorchFileError(f"{self.path}: storage {key!r} is declared twice with different types or sizes")
        return key


def _load_pickle(unpickler, path, what):
    try:
        return unpickler.load()
    except TorchFileError:
        raise
    except Exception as error:  # pickle raises many types (EOFError, UnpicklingError, ValueError, ...)
        raise TorchFileError(f"{path}: cannot read the {what}: {type(error).__name__}: {error}") from None


def _read_storages(file, keys, specs, path):
    storages = {}
    for key in keys:
        if key not in specs:
            raise TorchFileError(f"{path}: storage {key!r} is listed but no tensor refers to it")
        dtype, count = specs[key]
        header = file.read(8)
        data = file.read(count * dtype.itemsize) if len(header) == 8 else b""
        stored = int.from_bytes(header, "little") if len(header) == 8 else None
        if stored != count or len(data) != count * dtype.itemsize:
            raise TorchFileError(f"{path}: truncated or corrupt: storage {key!r} should hold {count} elements")
        storages[key] = np.frombuffer(data, dtype=dtype)
    return storages


def load_state_dict(path):
    """{name: numpy array} from a legacy `torch.save` file of a state dict (a dict of tensors)."""
    with open(path, "rb") as file:
        if file.read(4) == ZIP_MAGIC:
            raise TorchFileError(f"{path}: a zip-format PyTorch file (PyTorch >= 1.6); only the legacy format "
                                 "is read without torch")
        file.seek(0)
        unpickler = _RestrictedUnpickler(file, path)
        if _load_pickle(unpickler, path, "magic number") != LEGACY_MAGIC:
            raise TorchFileError(f"{path}: not a PyTorch file (wrong magic number)")
        if _load_pickle(unpickler, path, "protocol version") != LEGACY_PROTOCOL:
            raise TorchFileError(f"{path}: unsupported PyTorch serialization protocol")
        system = _load_pickle(unpickler, path, "system information")
        if not (isinstance(system, dict) and system.get("little_endian")):
            raise TorchFileError(f"{path}: written on a big-endian machine; not supported")
        state = _load_pickle(unpickler, path, "state dict")
        keys = _load_pickle(unpickler, path, "storage list")
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys) and len(set(keys)) == len(keys)):
            raise TorchFileError(f"{path}: the storage list is malformed")
        if not isinstance(state, dict) or not all(isinstance(v, _PendingTensor) for v in state.values()):
            raise TorchFileError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
        storages = _read_storages(file, keys, unpickler.storage_specs, path)
        if file.read(1):
            raise TorchFileError(f"{path}: unexpected bytes after the last storage")
    return {name: tensor.materialise(storages, path) for name, tensor in state.items()}
