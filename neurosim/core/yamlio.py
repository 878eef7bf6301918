"""Bounded, strict YAML reading for protocols and circuits.

A protocol is small; anything else is refused before it can cost time or memory:

* files larger than :data:`MAX_BYTES`, non-regular files (FIFOs, devices), non-UTF-8 text;
* nesting deeper than :data:`MAX_DEPTH` (checked on the event stream, before any recursion);
* documents that expand, through aliases, to more than :data:`MAX_NODES` values or
  :data:`MAX_EXPANDED` characters of text (an "alias bomb": a few lines that reference
  each other exponentially, or one long string referenced many times);
* duplicate keys in a mapping (YAML would silently keep the last one).

Only ``yaml.SafeLoader`` constructs values.  Errors are :class:`ConfigError` with the file
and line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from .options import ConfigError

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000
#: characters of text a document may hold once its aliases are expanded
MAX_EXPANDED = 4 * MAX_BYTES


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except TypeError:
                    raise ConfigError("a mapping key must be a plain value",
                                      line=key_node.start_mark.line + 1) from None
                if key in seen:
                    raise ConfigError(f"duplicate key {str(key)[:40]!r} (first on line {seen[key]})",
                                      line=key_node.start_mark.line + 1)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root) -> tuple:
    """(values, characters of scalars) the document holds once aliases are expanded
    (memoised over the node DAG; stops counting past the bounds)."""
    memo: dict = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in memo:
            continue
        children = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done or not children:
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            n = 1 + sum(memo[id(c)][0] for c in children)
            size = own + sum(memo[id(c)][1] for c in children)
            memo[id(node)] = (n, size)
            if n > MAX_NODES or size > MAX_EXPANDED:
                return n, size
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in memo)
    return memo[id(root)]


def parse(text: str, file=None):
    """YAML text -> Python value, with the bounds above (ConfigError otherwise)."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"larger than {MAX_BYTES // 1024} KiB; a protocol is a short text file",
                          file=file)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", file=file,
                                      line=event.start_mark.line + 1)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None
        n, size = _expanded_size(node)
        if n > MAX_NODES:
            raise ConfigError(f"expands to more than {MAX_NODES} values through aliases (&/*); "
                              f"write the values out", file=file)
        if size > MAX_EXPANDED:
            raise ConfigError(f"expands to more than {MAX_EXPANDED // 2**20} MiB of text through "
                              f"aliases (&/*); a protocol is a short text", file=file)
        loader = _StrictLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=file, line=exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=file,
                          line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise ConfigError("nested too deeply", file=file) from None


def read(path):
    """A YAML file -> (value, text)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError("is a directory, not a YAML file", file=path)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("is not a regular file (a FIFO, socket or device?)", file=path)
    if st.st_size > MAX_BYTES:
        raise ConfigError(f"is {st.st_size} bytes, larger than {MAX_BYTES // 1024} KiB; a protocol "
                          f"is a short text file", file=path)
    try:
        raw = path.read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                          file=path, line=line) from None
    return parse(text, path), text
