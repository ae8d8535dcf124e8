"""Read a weights pickle (Caffe2 / Detectron ``.pkl``) without running code from it.

``pickle.load`` calls whatever callable the file names: a file whose "array" unpickles to
``os.system(...)`` runs that command. Weight files hold only numpy arrays (rebuilt by numpy's own
reconstructors), dtypes, dicts, lists, tuples, strings and numbers, so the unpickler here resolves
only those globals (the "Restricting Globals" recipe of the ``pickle`` docs) and refuses anything
else before it is called, naming the file and the refused type.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from ..errors import WeightsFileError

# What numpy's own pickles name: ndarray and scalar reconstruction, dtypes (numpy 1.x ``numpy.core``,
# numpy 2.x ``numpy._core``); OrderedDict (a dict of blobs saved in order); and ``_codecs.encode``,
# with which Python 3 writes bytes under protocol 2 (str -> bytes, nothing else).
ALLOWED_GLOBALS = frozenset({
    *((core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
})


class UnsafePickleError(WeightsFileError):
    """A pickle that names a global a weights file never holds (it would run code when loaded)."""


class WeightsUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        # latin1: Caffe2's pickles were written by Python 2 (numpy's byte buffers as str)
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.path}: refused to load {module}.{name} — a weights file holds numpy arrays, numbers "
            "and strings; this one names code that would run when it is loaded (nothing was run)")


def load_weights_pickle(path: str | Path):
    """The object a weights pickle holds, built only from arrays, dtypes, containers and scalars."""
    path = Path(path)
    with path.open("rb") as f:
        return WeightsUnpickler(f, path).load()
