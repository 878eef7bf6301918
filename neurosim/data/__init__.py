"""Datasets as arrays in memory: name -> :class:`Dataset`.

Real images are scaled to [0, 1] and then normalised to [−1, 1] with
``(x − 0.5)/0.5`` (SPEC §7).  ``train_subset``/``test_subset`` keep the first
N examples (tests, smoke runs).

Option ``target: input`` (any dataset) replaces the labels by the flattened
inputs (autoencoders, MSE); the labels are kept as ``labels_train`` /
``labels_test`` (e.g. to colour a bottleneck by digit).  Option ``pixels:
unit`` maps the inputs from [−1, 1] to [0, 1] (``(x + 1)/2``), e.g. for a
ReLU-output autoencoder whose targets must be nonnegative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.options import Field, Section
from . import cifar10, mnist, synthetic
from .store import DataError, data_dir

__all__ = ["DATASETS", "DataError", "Dataset", "data_dir", "from_arrays", "load_dataset"]


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    labels_train: np.ndarray | None = None
    labels_test: np.ndarray | None = None

    @property
    def in_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])


def _normalise(x):
    return ((x.astype(np.float32) / 255.0) - 0.5) / 0.5


class Loader:
    """A dataset's loader, ``loader(root=None, **options)`` -> :class:`Dataset`, and what is
    known of the dataset without loading it."""

    #: (input shape, number of classes), when fixed
    known_shape: tuple | None = None
    #: training examples, when fixed
    n_train: int | None = None

    def __call__(self, root=None, **options) -> Dataset:
        raise NotImplementedError

    def shape(self, options: dict, path=None) -> tuple | None:
        """(in_shape, n_classes) without loading the data, or None when unknown."""
        return self.known_shape

    def train_size(self, options: dict) -> int | None:
        """Training examples without loading the data, or None when unknown."""
        return self.n_train

    def load(self, root, options: dict, path=None, arrays=None) -> Dataset:
        """The data (``path``: a dataset's own file; ``arrays``: data given in Python)."""
        return self(root, **options)


class _Images(Loader):
    """Images of a file set in the data directory, scaled to [−1, 1], 10 classes."""

    def __init__(self, name, loader, in_shape, n_train=None):
        self.name, self.known_shape, self.n_train = name, (in_shape, 10), n_train
        self.__wrapped__ = loader  # inspect.signature shows the loader's options

    def __call__(self, root=None, **kw) -> Dataset:
        (xtr, ytr), (xte, yte) = self.__wrapped__(root, **kw)
        return Dataset(self.name, _normalise(xtr), ytr.astype(np.int64), _normalise(xte),
                       yte.astype(np.int64), 10)


class _Synthetic(Loader):
    """Gaussian blobs generated from a seed (:mod:`.synthetic`)."""

    def __call__(self, root=None, seed=0, n_train=512, n_test=256, n_classes=10, shape=(1, 8, 8),
                 noise=1.0) -> Dataset:
        from ..core.backend import stream_seed

        rng = np.random.default_rng(stream_seed(seed, "synthetic"))
        (xtr, ytr), (xte, yte) = synthetic.blobs(rng, n_train, n_test, n_classes, tuple(shape), noise)
        return Dataset("synthetic", xtr.astype(np.float32), ytr, xte.astype(np.float32), yte,
                       n_classes)

    def _options(self, options: dict) -> dict:
        import inspect

        defaults = {k: v.default for k, v in inspect.signature(self.__call__).parameters.items()}
        return defaults | options

    def shape(self, options: dict, path=None) -> tuple:
        opts = self._options(options)
        return tuple(int(s) for s in opts["shape"]), int(opts["n_classes"])

    def train_size(self, options: dict) -> int:
        return int(self._options(options)["n_train"])


class _Npz(Loader):
    """The user's own ``.npz`` file (``data.path``)."""

    def __call__(self, root=None, path=None) -> Dataset:
        from .arrays import load_npz

        if not path:
            raise DataError("dataset npz needs data.path: the .npz file with x_train, y_train, "
                            "x_test, y_test")
        return load_npz(path)

    def shape(self, options: dict, path=None) -> tuple | None:
        """Read (and checked: :class:`DataError`) to know its shapes."""
        if not path:
            return None
        ds = self(path=path)
        return ds.in_shape, ds.n_classes

    def load(self, root, options: dict, path=None, arrays=None) -> Dataset:
        return self(root, path=path)


class _Arrays(Loader):
    """The data given in Python (``neurosim.run(protocol, data=...)``); its shapes are in the
    protocol's options, filled in from the arrays."""

    def __call__(self, root=None):
        raise DataError("dataset arrays is the data given in Python: neurosim.run(protocol, "
                        "data=...); a file is named with dataset: npz and path: FILE.npz")

    def shape(self, options: dict, path=None) -> tuple | None:
        if options.get("shape") and options.get("n_classes"):
            return tuple(int(s) for s in options["shape"]), int(options["n_classes"])
        return None

    def train_size(self, options: dict) -> int | None:
        return options.get("n_train")

    def load(self, root, options: dict, path=None, arrays=None) -> Dataset:
        if arrays is None:
            self(root)
        from .arrays import coerce, fingerprint

        ds = coerce(arrays)
        fp = options.get("fingerprint")
        if fp and fingerprint(ds) != fp:
            raise DataError(f"the arrays given are not those the protocol declares (fingerprint "
                            f"{fingerprint(ds)}, expected {fp})")
        return ds


class _Plugin(Loader):
    """A plug-in's loader (entry point group ``neurosim.datasets``); its data get the checks of
    everyone's (:mod:`.arrays`)."""

    def __init__(self, name, loader, fields):
        self.name, self.__wrapped__ = name, loader
        self._shape = getattr(loader, "SHAPE", None)
        self._fields = fields

    def __call__(self, root=None, **options):
        return self.__wrapped__(root, **options)

    def shape(self, options: dict, path=None) -> tuple | None:
        shape = self._shape
        if shape is None:
            return None
        if callable(shape):
            opts = {k: f.default for k, f in self._fields.items()} | dict(options)
            in_shape, n = shape({k: v for k, v in opts.items() if k in self._fields})
        else:
            in_shape, n = shape
        return tuple(int(s) for s in in_shape), int(n)

    def load(self, root, options: dict, path=None, arrays=None) -> Dataset:
        from .arrays import coerce

        out = coerce(self(root, **options), where=f"dataset {self.name} (plug-in)")
        out.name = self.name
        return out


DATASETS = {
    "mnist": _Images("mnist", mnist.load, (1, 28, 28), 60_000),
    "cifar10": _Images("cifar10", cifar10.load, (3, 32, 32), 50_000),
    "cifar10_partial": _Images("cifar10_partial", cifar10.load_partial, (3, 32, 32)),
    "synthetic": _Synthetic(),
    "npz": _Npz(),
    "arrays": _Arrays(),
}

#: datasets whose data is not in the data directory (own files, arrays, plug-ins' own)
OWN_DATA = {"npz", "arrays"}


_COMMON = {
    "target": Field(str, default="label", choices=("label", "input"),
                    doc="what the network predicts: the class label, or the input itself (autoencoder)"),
    "pixels": Field(str, default="symmetric", choices=("symmetric", "unit"),
                    doc="pixel scale: symmetric [-1, 1] or unit [0, 1]"),
}

#: each dataset's ``data.options`` (passed to its loader by keyword, beside target and pixels)
OPTIONS = {
    "mnist": Section(dict(_COMMON)),
    "cifar10": Section({**_COMMON, "check_md5": Field(bool, default=True, doc=(
        "check the batches against the official checksums (false: batches made by hand; "
        "structure and labels are checked all the same)"))}),
    "cifar10_partial": Section(dict(_COMMON)),
    "synthetic": Section({
        **_COMMON,
        "seed": Field(int, default=0, min=0, doc="seed of the generated data set"),
        "n_train": Field(int, default=512, min=1, doc="training examples"),
        "n_test": Field(int, default=256, min=1, doc="test examples"),
        "n_classes": Field(int, default=10, min=2, doc="classes (Gaussian blobs)"),
        "shape": Field(list, default=[1, 8, 8], length=3, item=Field(int, min=1),
                       doc="example shape (channels, height, width)"),
        "noise": Field(float, default=1.0, min=0, doc="standard deviation around each class centre"),
    }),
    "npz": Section({"target": _COMMON["target"]}),
    "arrays": Section({
        "target": _COMMON["target"],
        "shape": Field(list, default=None, nullable=True, item=Field(int, min=1),
                       doc="example shape (C, H, W) (filled in from the arrays given)"),
        "n_classes": Field(int, default=None, nullable=True, min=2,
                           doc="classes (filled in from the arrays given)"),
        "n_train": Field(int, default=None, nullable=True, min=1,
                         doc="training examples (filled in from the arrays given)"),
        "n_test": Field(int, default=None, nullable=True, min=1,
                        doc="test examples (filled in from the arrays given)"),
        "fingerprint": Field(str, default=None, nullable=True,
                             doc="content hash of the arrays given (a resume needs the same)"),
    }),
}


def describe(name: str, options: dict | None = None, path=None):
    """(in_shape, n_classes) of a dataset without loading it, or None if unknown.

    Used to check a circuit against its data before anything runs.  An ``npz`` file is read
    (and checked: :class:`DataError`) to know its shapes.
    """
    loader = DATASETS.get(name)
    return None if loader is None else loader.shape(dict(options or {}), path)


def train_size(name: str, options: dict | None = None, train_subset=None) -> int | None:
    """Training examples of a dataset without loading it (None when unknown): for
    estimates such as a sweep's time left."""
    loader = DATASETS.get(name)
    n = None if loader is None else loader.train_size(dict(options or {}))
    if n is None:
        return None
    return min(int(n), int(train_subset)) if train_subset else int(n)


def load_dataset(name: str, root=None, train_subset=None, test_subset=None, path=None,
                 arrays=None, **options) -> Dataset:
    """The dataset ``name``, checked; ``path``: the file of dataset ``npz``; ``arrays``: the data
    of dataset ``arrays`` (anything :func:`neurosim.data.arrays.coerce` takes)."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
    target = options.pop("target", "label")
    if target not in ("label", "input"):
        raise DataError(f"data option target must be 'label' or 'input', not {target!r}")
    pixels = options.pop("pixels", "symmetric")
    if pixels not in ("symmetric", "unit"):
        raise DataError(f"data option pixels must be 'symmetric' or 'unit', not {pixels!r}")
    ds = loader.load(root, options, path, arrays)
    if train_subset:
        ds.x_train, ds.y_train = ds.x_train[:train_subset], ds.y_train[:train_subset]
    if test_subset:
        ds.x_test, ds.y_test = ds.x_test[:test_subset], ds.y_test[:test_subset]
    if pixels == "unit":
        ds.x_train = (ds.x_train + 1) / 2
        ds.x_test = (ds.x_test + 1) / 2
    if target == "input":
        ds.labels_train, ds.labels_test = ds.y_train, ds.y_test
        ds.y_train = ds.x_train.reshape(ds.x_train.shape[0], -1)
        ds.y_test = ds.x_test.reshape(ds.x_test.shape[0], -1)
    return ds


def from_arrays(x_train, y_train, x_test, y_test, n_classes=None) -> Dataset:
    """A checked :class:`Dataset` from arrays (see :mod:`neurosim.data.arrays`)."""
    from .arrays import from_arrays as make

    return make(x_train, y_train, x_test, y_test, n_classes)


_BUILTIN = frozenset(DATASETS)


def _accept(obj) -> str | None:
    if not callable(obj):
        return f"{obj!r} is not a loader (a callable returning the data set)"
    opts = getattr(obj, "OPTIONS", None)
    if opts is not None and not isinstance(opts, (Section, dict)):
        return "its OPTIONS is neither a neurosim.core.options.Section nor a dict of Fields"
    return None


def register_plugins() -> list:
    """(Re)register the datasets of installed plug-ins (entry point group ``neurosim.datasets``).

    A plug-in dataset is a loader ``load(root=None, **options)`` returning a :class:`Dataset`,
    a mapping of ``x_train``, ``y_train``, ``x_test``, ``y_test`` (optionally ``n_classes``)
    or ``((x_train, y_train), (x_test, y_test))``: its data get the checks of
    :mod:`neurosim.data.arrays`.  Optional attributes: ``OPTIONS`` (a Section, or a dict of
    Fields, of its ``data.options``) and ``SHAPE`` (``(in_shape, n_classes)``, or a function
    of the options returning it; lets a protocol be checked before the data load)."""
    from ..core import plugins

    for k in [k for k in DATASETS if k not in _BUILTIN]:
        for reg in (DATASETS, OPTIONS):
            reg.pop(k, None)
    added = plugins.register("neurosim.datasets", DATASETS, _accept, _BUILTIN)
    for name in added:
        loader = DATASETS[name]
        opts = getattr(loader, "OPTIONS", None) or {}
        fields = dict(opts.fields if isinstance(opts, Section) else opts)
        OPTIONS[name] = Section({**_COMMON, **fields})
        DATASETS[name] = _Plugin(name, loader, fields)
    return added
