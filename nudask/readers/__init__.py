"""Reader registry: the built-in readers plus the ``nudask.readers`` entry points.

Third-party packages add a format with an entry point, e.g. in pyproject.toml::

    [project.entry-points."nudask.readers"]
    myformat = "mypkg.reader:MyReader"

``MyReader`` subclasses :class:`Reader`, with ``name = "myformat"``. The rules,
as in xarray's backend registry:

* A name given twice (two entry points, or an entry point with a built-in's
  name) warns (``RuntimeWarning``, naming both targets); the built-in wins,
  and between two entry points the first found on ``sys.path``.
* A plugin that fails to import, or whose class breaks the contract, warns and
  is left out: the other readers still list and guess.
* Guessing tries the readers in a stated order: by ``guess_priority`` (lower
  first, default 0), then the built-ins in :data:`BUILTIN` order, then the
  plugins by name. MicroBooNE goes before NOvA: it claims unreadable ``.h5``
  files, so that its ``read`` explains what is wrong with them.
* Options are checked against the reader's ``__init__`` before it is made: a
  misspelt one is a :class:`~nudask.errors.ConfigError` with a suggestion.

>>> available_readers()[:2]
['microboone', 'nova']
>>> get_reader("microboone", geometry="small").geometry.name
'small'
>>> get_reader("microboone", geomtry="small")
Traceback (most recent call last):
...
nudask.errors.ConfigError: reader 'microboone' has no option 'geomtry' (did you mean 'geometry'?); \
its options: geometry, factor, cutoff, saturation, fast_inflate, kernel
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from functools import cache
from importlib import import_module, metadata
from typing import Any

from ..errors import ConfigError, InputError
from .base import Reader, ReaderOption

DEFAULT_READER = "microboone"  # the demo's format, and `nudask simulate`'s without --format
#: name -> "module:Class" of the built-in readers, in guessing order; imported on first use
BUILTIN = {
    "microboone": "nudask.readers.microboone:MicroBooNEReader",
    "nova": "nudask.readers.nova:NOvAReader",
    "dune_sn": "nudask.readers.dune_sn:DuneSNReader",
    "inss": "nudask.readers.inss:INSSReader",
    "connie": "nudask.readers.connie:ConnieReader",
}
GROUP = "nudask.readers"
_METHODS = ("views", "metadata_fields", "event_weights", "read")  # what a reader must define


@dataclass(frozen=True)
class Target:
    """Where a reader comes from: ``module:Class`` and who installed it."""

    name: str
    value: str
    origin: str = "built-in"

    @property
    def builtin(self) -> bool:
        return self.origin == "built-in"

    def __str__(self) -> str:
        return f"'{self.value}' ({self.origin})"


def _origin(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"entry point of {dist.name} {dist.version}" if dist is not None else "entry point"


@cache
def _targets() -> dict[str, Target]:
    """Name -> target, duplicates resolved (with a warning each)."""
    found = {name: Target(name, value) for name, value in BUILTIN.items()}
    for ep in metadata.entry_points(group=GROUP):
        new = Target(ep.name, ep.value, _origin(ep))
        old = found.setdefault(ep.name, new)
        if old is not new and old.value != new.value:
            keep = "the built-in" if old.builtin else "the first"
            warnings.warn(
                f"reader '{ep.name}' is defined twice: {old} and {new}; using {keep}, {old.value}",
                RuntimeWarning,
                stacklevel=3,
            )
    return found


def _contract_problem(cls: object, name: str) -> str:
    """What keeps ``cls`` from being the reader ``name`` ("" if nothing)."""
    if not (isinstance(cls, type) and issubclass(cls, Reader)):
        return f"{cls!r} is not a subclass of nudask.readers.Reader"
    if getattr(cls, "name", None) != name:
        return f"its name attribute is {getattr(cls, 'name', None)!r}, not {name!r}"
    if not isinstance(cls.suffixes, tuple) or not all(isinstance(s, str) for s in cls.suffixes):
        return f"its suffixes must be a tuple of strings, not {cls.suffixes!r}"
    missing = [m for m in _METHODS if getattr(cls, m) is getattr(Reader, m)]
    if missing:
        return f"it does not define {', '.join(missing)}"
    undeclared = sorted(set(cls.OPTIONS) - set(cls.declared_options()))
    if undeclared and not cls.takes_any_option():
        return f"its OPTIONS name {undeclared}, which its __init__ does not take"
    return ""


@cache
def _load(name: str) -> type[Reader] | str:
    """The class of reader ``name``, or what is wrong with a plugin (after a warning)."""
    target = _targets()[name]
    module, _, attr = target.value.partition(":")
    try:
        obj: Any = import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        problem = _contract_problem(obj, name)
    except Exception as err:
        if target.builtin:
            raise
        problem = f"cannot load it ({type(err).__name__}: {err})"
    if not problem:
        return obj
    if target.builtin:
        raise TypeError(f"built-in reader {target}: {problem}")
    warnings.warn(f"reader plugin {name!r} {target} is left out: {problem}", RuntimeWarning, stacklevel=3)
    return problem


def _order(cls: type[Reader]) -> tuple[int, int, str]:
    builtin = list(BUILTIN).index(cls.name) if cls.name in BUILTIN else len(BUILTIN)
    return (cls.guess_priority, builtin, cls.name)


@cache
def _readers() -> dict[str, type[Reader]]:
    """The usable readers, in guessing order."""
    loaded = [cls for cls in map(_load, _targets()) if not isinstance(cls, str)]
    return {cls.name: cls for cls in sorted(loaded, key=_order)}


def refresh_readers() -> None:
    """Forget what was found, so that plugins installed since are seen (and warned about)."""
    for f in (_targets, _load, _readers):
        f.cache_clear()


def available_readers() -> list[str]:
    """Names of the usable readers, in the order :func:`guess_reader` tries them."""
    return list(_readers())


def reader_class(name: str) -> type[Reader]:
    """The class of reader ``name``; a :class:`~nudask.errors.ConfigError` if there is none."""
    if name in _targets():
        cls = _load(name)
        if isinstance(cls, str):
            raise ConfigError(f"reader {name!r} {_targets()[name]} cannot be used: {cls}")
        return cls
    close = difflib.get_close_matches(name, available_readers(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"unknown reader {name!r}{hint}; installed readers: {', '.join(available_readers())}")


def check_options(cls: type[Reader], options: dict[str, Any]) -> None:
    """Refuse options ``cls`` does not take, and missing required ones, in one line."""
    known = cls.declared_options()
    problems = []
    if not cls.takes_any_option():
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                problems.append(
                    f"has no option '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                )
    problems += [
        f"needs option '{k}' (-O {k}=VALUE)" for k, o in known.items() if o.required and k not in options
    ]
    if problems:
        valid = ", ".join(known) or "none"
        raise ConfigError(f"reader '{cls.name}' {'; '.join(problems)}; its options: {valid}")


def get_reader(name: str | Reader, **options: Any) -> Reader:
    """A reader by name, configured with its ``options`` (checked first)."""
    if isinstance(name, Reader):
        if options:
            raise TypeError("pass options either to the reader or to get_reader, not both")
        return name
    cls = reader_class(name)
    check_options(cls, options)
    return cls(**options)


def guess_reader(path: str | os.PathLike[str]) -> str:
    """Name of the first reader (in :func:`available_readers` order) that can open ``path``."""
    tried = []
    for name, cls in _readers().items():
        tried.append(name)
        try:
            if cls.guess_can_open(path):
                return name
        except Exception as err:
            if _targets()[name].builtin:
                raise
            warnings.warn(
                f"reader plugin {name!r}: guess_can_open failed ({type(err).__name__}: {err}); skipped",
                RuntimeWarning,
                stacklevel=2,
            )
    raise InputError(
        path,
        f"no reader recognises it (tried {', '.join(tried) or 'none'})",
        "pass the format: --reader NAME, or reader=... (nudask readers lists them)",
    )


def _value(v: Any) -> str:
    """A default as it would be typed after ``-O KEY=``."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    return str(v)


def _option_lines(options: dict[str, ReaderOption]) -> list[str]:
    pairs = [f"-O {o.name}=" + ("VALUE" if o.required else _value(o.default)) for o in options.values()]
    width = max(map(len, pairs))
    lines = []
    for pair, o in zip(pairs, options.values()):
        notes = [o.annotation] if o.annotation else []
        notes += ["required"] if o.required else []
        text = " ".join(([f"({', '.join(notes)})"] if notes else []) + ([o.help] if o.help else []))
        lines.append(f"    {pair.ljust(width)}  {text}".rstrip())
    return lines


def describe_readers() -> str:
    """What ``nudask readers`` prints: each reader, its suffixes and its ``-O`` options.

    >>> print(describe_readers().split("\\n\\n")[1])  # doctest: +NORMALIZE_WHITESPACE
    nova: NOvA-like pixel maps (PHAS0056 course files), views xz and yz of 100 x 80
      class: nudask.readers.nova:NOvAReader (built-in)
      suffixes: .h5 .hdf5
      options: none
    """
    blocks = []
    for name, cls in _readers().items():
        target = _targets()[name]
        opts = cls.declared_options()
        lines = [
            f"{name}: {cls.description or '(no description)'}",
            f"  class: {target.value} ({target.origin})",
            f"  suffixes: {' '.join(cls.suffixes) or '(any)'}",
        ]
        if opts:
            lines += ["  options (-O KEY=VALUE, shown with their defaults):", *_option_lines(opts)]
        if cls.takes_any_option():
            lines.append("  options: also any other -O KEY=VALUE (not checked)")
        elif not opts:
            lines.append("  options: none")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


__all__ = [
    "BUILTIN",
    "Reader",
    "ReaderOption",
    "available_readers",
    "check_options",
    "describe_readers",
    "get_reader",
    "guess_reader",
    "reader_class",
    "refresh_readers",
]
