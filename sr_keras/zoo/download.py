"""Download a registered model once, convert it to `.keras`, and keep only that in the Keras cache.

The authors' file is fetched by `keras.utils.get_file` into a private
temporary folder and checked against its pinned SHA-256; only the converted
model is written to the cache, atomically, so a failed, corrupt or
interrupted download leaves nothing there. Later uses read the cached
`.keras` and need neither the network nor a conversion.
"""

import os
import tempfile
import urllib.error

import keras

from sr_keras.io.atomic import atomic_output_path
from sr_keras.io.digest import sha256_of
from sr_keras.io.torch_legacy import TorchFileError
from sr_keras.pirm_import import StateDictMismatch, import_pirm
from sr_keras.zoo.registry import PIRM_BASE_URL_ENV, ModelUnavailable, download_url


class DownloadFailed(ModelUnavailable):
    """The file could not be fetched, or was not the pinned one."""


def keras_cache_dir():
    """The Keras cache folder as Keras chooses it ($KERAS_HOME, else ~/.keras), read at call time."""
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def cached_path(entry):
    """Where the converted `.keras` of a downloadable model lives; the hash prefix ties it to the pinned file."""
    return os.path.join(keras_cache_dir(), "models", "sr_keras", f"{entry.name}-{entry.sha256[:12]}.keras")


def _reason(error):
    """The network error behind get_file's generic Exception (it chains the urllib error), in a few words."""
    cause = error.__context__
    if isinstance(cause, urllib.error.HTTPError):
        return f"HTTP {cause.code} {cause.reason}"
    if isinstance(cause, urllib.error.URLError):
        return str(cause.reason)
    return " ".join(str(error).split())


def _fetch(entry, url, folder):
    """The downloaded, hash-checked file in `folder`; DownloadFailed (one line) otherwise."""
    try:
        return keras.utils.get_file(f"{entry.name}.model", origin=url, file_hash=entry.sha256,
                                    hash_algorithm="sha256", cache_subdir=folder)
    except ValueError:  # get_file's hash check; it leaves the file in place
        target = os.path.join(folder, f"{entry.name}.model")
        actual = sha256_of(target)
        os.remove(target)
        raise DownloadFailed(f"{url}: the downloaded file has SHA-256 {actual}, not the pinned {entry.sha256} "
                             f"for {entry.name} (a changed or corrupt file); removed it, nothing cached") from None
    except Exception as error:  # get_file turns URL, HTTP and short-read errors into a plain Exception
        raise DownloadFailed(
            f"cannot download {entry.name} from {url} ({_reason(error)}); nothing cached. Set {PIRM_BASE_URL_ENV} "
            f"to a mirror of the authors' files, or download the file yourself, run "
            f"`sr-keras import-pirm FILE --output {entry.name}.keras` and pass that .keras file as the model"
        ) from None


def ensure_downloaded(entry):
    """Path of `entry`'s converted `.keras` in the Keras cache, downloading and converting it if absent."""
    path = cached_path(entry)
    if os.path.isfile(path):
        return path
    url = download_url(entry)
    with tempfile.TemporaryDirectory(prefix="sr_keras-download-") as folder:
        source = _fetch(entry, url, folder)
        try:
            generator = import_pirm(source)
        except (TorchFileError, StateDictMismatch) as error:
            raise DownloadFailed(f"{url}: cannot convert the downloaded file: {error}") from None
        try:
            with atomic_output_path(path) as tmp:
                generator.save(tmp)
        except OSError as error:
            raise ModelUnavailable(f"{path}: cannot write the converted model to the Keras cache ({error}); "
                                   "set KERAS_HOME to a writable folder") from None
    return path
