"""The one ``KEY=VALUE`` parser: reader ``-O``, ``--cluster-option`` and train's ``--set``.

The key loses surrounding blanks and dashes become underscores (``job-extra``
is ``job_extra``); the value is read as YAML, so ``6`` is a number, ``null``
is None and ``[64, 64]`` a list. A value YAML 1.1 would read as a base-60
number (``12:00:00``) stays text: those are times, not numbers.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from .errors import ConfigError


def parse_key_value(text: str, *, argument: str = "", form: str = "KEY=VALUE") -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key, value)``; raises :class:`~nudask.errors.ConfigError`.

    ``argument`` (e.g. ``"--set"``) and ``form`` (e.g. ``"section.key=value"``)
    only word the error message.

    >>> parse_key_value("factor=6"), parse_key_value("geometry=small")
    (('factor', 6), ('geometry', 'small'))
    >>> parse_key_value("input.crop_size=[64, 64]"), parse_key_value("cutoff=null")
    (('input.crop_size', [64, 64]), ('cutoff', None))
    >>> parse_key_value("walltime=12:00:00"), parse_key_value("job-extra-directives=[--exclusive]")
    (('walltime', '12:00:00'), ('job_extra_directives', ['--exclusive']))
    >>> parse_key_value("train.epochs", argument="--set", form="section.key=value")
    Traceback (most recent call last):
    ...
    nudask.errors.ConfigError: --set: expected section.key=value, got 'train.epochs'
    >>> parse_key_value("views=[u, v", argument="--set")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nudask.errors.ConfigError: --set views=[u, v: the value is not valid YAML (expected ',' or ']', ...)
    """
    where = f"{argument}: " if argument else ""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ConfigError(f"{where}expected {form}, got {text!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        named = f"{argument} {text}" if argument else repr(text)
        raise ConfigError(f"{named}: the value is not valid YAML ({problem})") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and ":" in raw:
        value = raw.strip()
    return key, value


def key_value_argument(text: str) -> tuple[str, Any]:
    """:func:`parse_key_value` as an argparse ``type=``: a bad pair is a usage error.

    argparse names the option in its message (``argument -O/--reader-option: ...``).
    """
    try:
        return parse_key_value(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


__all__ = ["key_value_argument", "parse_key_value"]
