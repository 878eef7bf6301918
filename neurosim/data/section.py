"""The ``data:`` section of a protocol: which data set, its file, subsets and own options.

Declared here, beside the data sets it names; the dataset's own options are validated against
the dataset's declaration (:data:`neurosim.data.OPTIONS`).
"""

from __future__ import annotations

from ..core.options import ConfigError, Field, Section


def _check_data(values, key):
    """The dataset's own options, validated against its declaration (the resolved protocol keeps
    only the options given: the loader's defaults are the declared ones)."""
    from . import OPTIONS

    given = values.options or {}
    checked = OPTIONS[values.dataset].validate(given, f"{key}.options")
    if values.dataset == "npz" and not values.path:
        raise ConfigError("dataset npz needs path: the .npz file with x_train, y_train, x_test, "
                          "y_test", key=f"{key}.path")
    if values.dataset != "npz" and values.path:
        raise ConfigError(f"path names the file of dataset npz; dataset {values.dataset} is "
                          f"not read from a file of yours", key=f"{key}.path")
    return values.replace(options={k: checked[k] for k in given} or None)


def data_section() -> Section:
    """The declared ``data:`` section (its dataset choices are the registered data sets,
    plug-ins' included)."""
    from . import DATASETS

    return Section({
        "dataset": Field(str, choices=tuple(DATASETS),
                         doc="data set: a built-in one (read from the data directory), `npz` "
                             "(your file, `path`), `arrays` (`neurosim.run(..., data=...)`) "
                             "or a plug-in's"),
        "path": Field(str, default=None, nullable=True,
                      doc="the `.npz` file of dataset `npz` (x_train, y_train, x_test, y_test; "
                          "relative to the protocol's folder, else the current one)"),
        "root": Field(str, default=None, nullable=True,
                      doc="data directory (default: $NEUROSIM_DATA_DIR, else the cache directory)"),
        "train_subset": Field(int, default=None, nullable=True, min=1, doc="first N training examples"),
        "test_subset": Field(int, default=None, nullable=True, min=1, doc="first N test examples"),
        "options": Field(dict, default=None, nullable=True,
                         doc="the dataset's options (see the data options below)"),
    }, checks=(_check_data,), doc="the data set")


def target(data) -> str:
    """What a validated ``data`` section's examples are learned against: ``label`` (the
    dataset's declared default) or ``input`` (an autoencoder)."""
    from . import OPTIONS

    given = data.options or {}
    return given.get("target", OPTIONS[data.dataset].fields["target"].default)
