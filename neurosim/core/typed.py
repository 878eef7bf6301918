"""Validated options as values: frozen mappings and lists read by key or by attribute.

:func:`freeze` makes the values a section validates (:mod:`neurosim.core.options`)
:class:`Options` and :class:`FrozenList`: ``dict`` and ``list`` subclasses, so that they
serialise (``json.dumps``) and compare as the plain values they hold, that refuse every change;
:func:`plain` is the mutable copy.
"""

from __future__ import annotations

import difflib


def _near(word, options) -> str:
    m = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{m[0]}'?)" if m else ""


def _frozen(self, *args, **kwargs):
    raise TypeError("options are frozen; to_dict() gives a mutable copy")


class _Frozen:
    """What a frozen value shares: a copy is itself, a deep copy frozen anew, a pickle the plain
    value it holds."""

    __slots__ = ()

    def __reduce__(self):
        return (type(self), (self._PLAIN(self),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return freeze(self)


class Options(_Frozen, dict):
    """The validated values of a section: frozen, read by key or by attribute.

    A ``dict`` subclass so that it serialises (``json.dumps``) as the plain mapping it holds;
    every mutating method refuses (``to_dict()`` gives a mutable, plain copy, nested sections
    and lists included).  Nested sections are :class:`Options` too, lists :class:`FrozenList`.
    A key that is also a ``dict`` method's name (``items``) is read by key."""

    __slots__ = ()
    _PLAIN = dict

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no option {name!r}{_near(name, [str(k) for k in self])}") from None

    __setitem__ = __delitem__ = __setattr__ = __delattr__ = __ior__ = _frozen
    clear = pop = popitem = setdefault = update = _frozen

    def __repr__(self) -> str:
        return f"Options({dict.__repr__(self)})"

    def to_dict(self) -> dict:
        """A plain, mutable copy (nested sections as dicts): what a store records."""
        return plain(self)

    def replace(self, **changes) -> Options:
        """A copy with ``changes`` (top-level keys) in place of this one's values."""
        return type(self)({**self, **{k: freeze(v) for k, v in changes.items()}})


class FrozenList(_Frozen, list):
    """A list of validated values: equal to, and serialised as, the plain list; not mutable."""

    __slots__ = ()
    _PLAIN = list

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _frozen
    append = extend = insert = pop = remove = clear = sort = reverse = _frozen


def freeze(value):
    """``value`` with every mapping in it made :class:`Options`, every list :class:`FrozenList`."""
    if isinstance(value, dict):
        return Options({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(v) for v in value)
    return value


def plain(value):
    """``value`` with every mapping a plain ``dict`` and every sequence a list (a deep copy)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
