"""The circuit section (``circuit:`` of a protocol, or a ``circuits/*.yaml`` file): its declared
options and their validation.

A circuit names the architecture the network is built from (:mod:`neurosim.model.network`):
whether it is a vectorized nonnegative network, its components, sign and initialisation, the
hidden layers (each validated against its kind's declared ``OPTIONS``,
:data:`neurosim.model.layers.LAYERS`) and the readout.
"""

from __future__ import annotations

from ..core.options import ConfigError, Field, Section, Tagged, line_of, suggest


def _layer_schema() -> Tagged:
    from . import layers as layermod

    nl = Field(str, default=None, nullable=True,
               doc="nonlinearity after this layer (default: the circuit's; `none` for none)")
    return Tagged("type", {kind: cls.OPTIONS.with_fields(nonlinearity=nl)
                           for kind, cls in layermod.LAYERS.items()}, doc="one layer")


def circuit_schema() -> Section:
    return Section({
        "name": Field(str, default=None, nullable=True, doc="name of the architecture"),
        "description": Field(str, default="", nullable=True),
        "dataset": Field(str, default=None, nullable=True, doc="dataset the circuit was designed for"),
        "vectorized": Field(bool, default=True,
                            doc="a vectorized nonnegative network (VNN, K components per unit)"),
        "components": Field(int, default=None, nullable=True, min=1,
                            doc="K (default: the dataset's number of classes)"),
        "sign": Field(str, default="nonnegative", choices=("nonnegative", "mixed"),
                      doc="nonnegative weights beyond the first layer, or mixed sign"),
        "init": Field(str, default="on_off", choices=("on_off", "he"),
                      doc="ON/OFF initialisation (eq. 16) or He"),
        "input_code": Field(str, default="identity", choices=("identity", "on_off"),
                            doc="the stimulus as it reaches the first layer: identity (x), or on_off "
                                "(populations (1+x)/2 and (1-x)/2 with a nonnegative first layer: "
                                "every weight of one sign per presynaptic population, Dale's law; "
                                "needs sign nonnegative and a dense first layer)"),
        "nonlinearity": Field(str, default="gate", doc="hidden units' nonlinearity (gate: eq. 7-8)"),
        "gating": Field(str, default="paired", choices=("paired", "random", "first_bin"),
                        doc="how the gating vectors t are drawn"),
        "output": Section({"nonlinearity": Field(str, default="identity", doc="readout nonlinearity"),
                           "units": Field(int, default=None, nullable=True, min=1,
                                          doc="readout units of a conventional network "
                                              "(default: number of classes), e.g. 784 for an autoencoder")},
                          doc="the readout layer"),
        "layers": Field(list, item=_layer_schema(), doc="hidden layers, input to output"),
    })


#: the keys a protocol's ``circuit: {file: ..., <overrides>}`` may hold
CIRCUIT_REF_KEYS = {"file", "name", "description", "dataset", "vectorized", "components", "sign",
                    "init", "input_code", "nonlinearity", "gating", "output", "layers"}


def validate_circuit(spec: dict, file=None, text=None, key_prefix=""):
    """A circuit mapping -> its validated :class:`~neurosim.core.options.Options`; an error
    names ``file:line`` when the circuit was read from ``file`` (its YAML ``text``)."""
    def key(k):
        return f"{key_prefix}.{k}" if key_prefix else k

    try:
        c = circuit_schema().validate(spec, key_prefix)
        if not c.layers:
            raise ConfigError("a circuit needs at least one hidden layer", key=key("layers"))
        if c.vectorized and c.output.units not in (None, 1):
            raise ConfigError("a vectorized circuit has one vector output unit", key=key("output.units"))
        if c.vectorized is False and c.components not in (None, 1):
            raise ConfigError("a conventional (vectorized: false) circuit has components 1",
                              key=key("components"))
    except ConfigError as exc:
        raise exc.at(file=file, line=line_of(text, exc.key)) if file else exc from None
    return c


def check_nonlinearities(circuit, err) -> None:
    """Nonlinearity names of a validated circuit (hidden default, per layer, readout);
    ``err(message, circuit_key)`` makes the :class:`ConfigError`."""
    from .nonlinearity import NONLINEARITIES

    known = sorted(set(NONLINEARITIES) | {"none"})
    places = [("nonlinearity", circuit.nonlinearity), ("output.nonlinearity", circuit.output.nonlinearity)]
    places += [(f"layers[{i}].nonlinearity", ls.nonlinearity) for i, ls in enumerate(circuit.layers)]
    for key, name in places:
        if name is not None and name not in known:
            raise err(f"unknown nonlinearity {name!r}{suggest(str(name), known)}", key)


def check_shapes(circuit, in_shape, n_classes: int, err):
    """Dry run of the network's construction on shapes only (no data, no weights):
    :func:`~neurosim.model.network.plan_network`, the planner ``build_network`` uses,
    so a layer that cannot take its input (a kernel larger than the image, zero
    units, ...) fails here with its own message; ``err(message, circuit_key)``
    makes the :class:`ConfigError`.  Returns the :class:`~neurosim.model.network.NetworkPlan`
    (layers with weights as shapes, their roles and nonlinearities, K).
    """
    from .network import ShapeError, plan_network

    try:
        plan = plan_network(circuit, in_shape, n_classes)
    except ShapeError as exc:
        raise err(str(exc), exc.key) from None
    return plan
