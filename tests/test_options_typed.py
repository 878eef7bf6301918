"""Typed options: validation returns frozen Options built from the declarations (defaults applied
there, once), which serialise to the same plain mapping a store records; the memory estimate
asks the realization and the optimizer for their needs; stored protocols are read typed."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from neurosim.core.options import ConfigError, Field, Options, Section, freeze
from neurosim.protocol import validate_protocol, view

CIRCUIT = {"layers": [{"type": "dense", "units": 6}]}
DATA = {"dataset": "synthetic", "options": {"n_train": 32, "n_test": 16, "shape": [1, 4, 4]}}


def proto(**more):
    return validate_protocol({"circuit": CIRCUIT, "rule": {"name": "gevb"}, "data": DATA, **more})


def test_a_validated_section_is_frozen_and_read_by_attribute():
    s = Section({"a": Field(int, default=3), "sub": Section({"b": Field(str, default="x")})})
    o = s.validate({"sub": {}}, "")
    assert isinstance(o, Options) and isinstance(o.sub, Options)
    assert o.a == o["a"] == 3 and o.sub.b == "x"
    for mutate in (lambda: o.__setitem__("a", 4), lambda: o.update(a=4), lambda: o.pop("a"),
                   lambda: setattr(o, "a", 4), lambda: o.sub.clear(), lambda: o.setdefault("c", 1)):
        with pytest.raises(TypeError, match="frozen"):
            mutate()
    with pytest.raises(AttributeError, match="did you mean 'sub'"):
        _ = o.subb
    plain = o.to_dict()
    assert plain == {"a": 3, "sub": {"b": "x"}} and type(plain["sub"]) is dict
    plain["a"] = 5  # a mutable copy: the options are unchanged
    assert o.a == 3 and o.replace(a=4).a == 4 and o.a == 3


def test_the_resolved_protocol_serialises_as_the_plain_dict_a_store_records():
    p = proto(realization={"type": "grouped", "dynamics": {}}, training={"epochs": 2})
    assert isinstance(p, Options) and isinstance(p.realization.dynamics.eligibility, Options)
    assert p.realization.dynamics.eligibility.tau_e_ms == 500.0  # the declared default
    text = json.dumps(p)
    assert json.loads(text) == p.to_dict() == p and text == json.dumps(p.to_dict())
    assert pickle.loads(pickle.dumps(p)) == p and isinstance(pickle.loads(pickle.dumps(p)), Options)
    deep = copy.deepcopy(p)
    assert deep == p and isinstance(deep.training, Options)
    layers = p.circuit.layers
    assert layers == [dict(x) for x in layers] and isinstance(layers[0], Options)
    with pytest.raises(TypeError, match="frozen"):
        layers.append({})  # frozen all the way down
    with pytest.raises(TypeError, match="frozen"):
        p.data.options.shape[0] = 2
    assert freeze(json.loads(text)) == p  # a stored protocol, typed again


def test_a_section_check_may_replace_values():
    p = proto()
    assert p.data.options == {"n_train": 32, "n_test": 16, "shape": [1, 4, 4]}  # only those given


def test_a_stored_protocol_is_viewed_with_the_declared_defaults():
    stored = {"circuit": {"layers": [{"type": "dense", "units": 4}]},
              "realization": {"type": "temporal", "dynamics": {"neurons": {"model": "lif"}}},
              "rule": {"name": "gevb"}, "training": {"epochs": 3}, "unknown": 1}
    v = view(stored)
    assert v.training.epochs == 3 and v.training.batch_size == 128
    assert v.circuit.vectorized is True and v.circuit.layers[0].units == 4
    assert v.realization.gating == "full" and v.realization.dynamics.neurons.model == "lif"
    assert v.realization.dynamics.eligibility.tau_e_ms == 500.0
    assert v.unknown == 1  # kept as it is
    assert view({"realization": {"type": "grouped"}}).realization.dynamics is None


def test_memory_needs_are_declared_by_the_realization_and_the_optimizer():
    from neurosim.optim import OPTIMIZERS
    from neurosim.realizations import REALIZATIONS
    from neurosim.schedule import memory_needs

    tr = proto().training
    # what the protocol's switch on names said: K copies for grouped, 2 state arrays for adam
    for real, opt in [("batched", "adam"), ("grouped", "sgd"), ("temporal", "adam")]:
        needs = memory_needs(tr, REALIZATIONS[real], OPTIMIZERS[opt], 7)
        assert needs == {"copies": 7 if real == "grouped" else 1,
                         "optimizer_state": 2 if opt == "adam" else 1, "batch_size": 128}


def test_eval_batch_size_is_computed_once_by_the_schedule(monkeypatch):
    from neurosim import experiment, schedule

    calls = []
    real = schedule.eval_batch_size
    monkeypatch.setattr(schedule, "eval_batch_size", lambda *a: calls.append(a) or real(*a))
    exp = experiment.build(proto(training={"memory_gib": 0.5}))
    assert exp.eval_batch_size == exp.eval_batch_size and len(calls) == 1
    exp2 = experiment.build(proto(training={"eval_batch_size": 7}))
    assert exp2.eval_batch_size == 7


def test_realizations_receive_their_own_typed_options():
    from neurosim import experiment

    exp = experiment.build(proto(realization={"type": "grouped", "relaxation": {"rate": 0.5}}), data=False)
    o = exp.realization.options
    assert isinstance(o, Options) and "type" not in o
    assert o.relaxation.rate == 0.5 and o.relaxation.schedule == "every_step" and o.time_bins == 1
    assert exp.realization.rho == 0.5 and exp.realization.relax_every == 10
    with pytest.raises(ConfigError):
        type(exp.realization).validated_options({"relaxation": {"rate": 2}})


def test_agreement_is_the_realizations_own_account():
    from neurosim.realizations import REALIZATIONS

    G, T = REALIZATIONS["grouped"], REALIZATIONS["temporal"]
    assert G.agreement({}).startswith("exact")
    assert G.agreement({"relaxation": {"schedule": "never"}}).startswith("approximate")
    assert T.agreement({"type": "temporal"}).startswith("exact")
    assert T.agreement({"gating": "first_bin"}).startswith("approximate")
    ideal = {"neurons": {"tau_m_ms": 0}, "gating": {"tau_inh_ms": 0}, "eligibility": {"tau_e_ms": 0},
             "neuromodulator": {"delay_ms": 0, "tau_ms": 0}, "code": {"rectify": False}}
    assert G.agreement({"dynamics": ideal}).startswith("exact")
    assert G.agreement({"dynamics": {}}).startswith("approximate")
