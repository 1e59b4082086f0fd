"""The reader registry with third-party plugins: duplicates, broken plugins, order, options.

Plugins are installed for real: a ``*.dist-info`` folder with an
``entry_points.txt`` on ``sys.path``, as pip leaves them, found by
``importlib.metadata``.
"""

from __future__ import annotations

import contextlib
import sys
import textwrap
import warnings
from importlib import metadata

import pytest

from nudask.cli import main
from nudask.errors import ConfigError, InputError
from nudask.readers import (
    BUILTIN,
    available_readers,
    describe_readers,
    get_reader,
    guess_reader,
    reader_class,
    refresh_readers,
)
from nudask.readers.nova import NOvAReader

BUILTINS = list(BUILTIN)  # the built-in readers, in their guessing order

PLUGIN_MODULE = '''
import numpy as np

from nudask.events import ViewSpec
from nudask.readers import Reader


class ToyReader(Reader):
    """Toy format.

    Parameters
    ----------
    size : int
        Pixels per side of
        the image.
    """

    name = "toy"
    suffixes = (".toy",)
    description = "toy test format"
    OPTIONS = {"scale": "multiplies every value"}

    def __init__(self, *, size: int = 4, scale: float = 1.0, label: str):
        self.size, self.scale, self.label = size, scale, label

    def views(self, path):
        return {"xy": ViewSpec("xy", ("x", "y"), (self.size, self.size), "float32")}

    def metadata_fields(self, path):
        return {}

    def event_weights(self, path):
        return np.ones(3)

    def read(self, chunk):
        return iter(())


class OtherToy(ToyReader):
    description = "another toy"


class ATOYReader(ToyReader):
    name = "atoy"
    suffixes = (".atoy",)


class EarlyReader(ToyReader):
    name = "first"
    suffixes = (".toy",)
    guess_priority = -1

    @classmethod
    def guess_can_open(cls, path):
        return str(path).endswith("first.toy")


class SniffBreaks(ToyReader):
    name = "sniffy"
    suffixes = (".sniff",)

    @classmethod
    def guess_can_open(cls, path):
        raise RuntimeError("sniffing needs a licence server")


class FakeNova(ToyReader):
    name = "nova"


class NotAReader:
    name = "plain"


class HalfReader(Reader):
    name = "half"

    def views(self, path):
        return {}
'''

ENTRY_POINTS = """
[nudask.readers]
toy = toyplug:ToyReader
atoy = toyplug:ATOYReader
first = toyplug:EarlyReader
sniffy = toyplug:SniffBreaks
nova = toyplug:FakeNova
plain = toyplug:NotAReader
half = toyplug:HalfReader
wrongname = toyplug:ToyReader
missing = nudask_no_such_module:Reader
raising = raisingplug:Reader
"""


def _install(folder, dist, version, entry_points):
    info = folder / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Plugins from two distributions, in two sys.path folders (first.../ searched first)."""
    first, second = tmp_path / "first", tmp_path / "second"
    _install(first, "nudask-test-plugins", "1.0", ENTRY_POINTS)
    (first / "toyplug.py").write_text(PLUGIN_MODULE)
    (first / "raisingplug.py").write_text("raise ImportError('raisingplug needs libfoo.so')\n")
    _install(second, "other-toy", "2.0", "[nudask.readers]\ntoy = toyplug:OtherToy\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    refresh_readers()
    yield
    refresh_readers()
    for name in ("toyplug", "raisingplug"):
        sys.modules.pop(name, None)


@contextlib.contextmanager
def runtime_warnings():
    """The messages of the RuntimeWarnings raised in the block (a list filled on exit)."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield messages
        finally:
            messages += [str(w.message) for w in caught if w.category is RuntimeWarning]


def _collect(fn, *args):
    with runtime_warnings() as messages:
        result = fn(*args)
    return result, messages


def test_duplicates_warn_naming_both_targets_and_the_builtin_wins(plugins):
    names, messages = _collect(available_readers)
    assert (
        "reader 'nova' is defined twice: 'nudask.readers.nova:NOvAReader' (built-in) and "
        "'toyplug:FakeNova' (entry point of nudask-test-plugins 1.0); using the built-in, "
        "nudask.readers.nova:NOvAReader"
    ) in messages
    assert (
        "reader 'toy' is defined twice: 'toyplug:ToyReader' (entry point of nudask-test-plugins 1.0) "
        "and 'toyplug:OtherToy' (entry point of other-toy 2.0); using the first, toyplug:ToyReader"
    ) in messages
    assert reader_class("nova") is NOvAReader
    assert reader_class("toy").description == "toy test format"
    assert "nova" in names and names.count("nova") == 1


def test_broken_plugins_warn_and_are_left_out(plugins):
    names, messages = _collect(available_readers)
    assert names == ["first", *BUILTINS, "atoy", "points", "sniffy", "toy"]
    broken = {m.split("'")[1]: m for m in messages if "is left out" in m}
    assert set(broken) == {"plain", "half", "wrongname", "missing", "raising"}
    assert "ModuleNotFoundError: No module named 'nudask_no_such_module'" in broken["missing"]
    assert "ImportError: raisingplug needs libfoo.so" in broken["raising"]
    assert "is not a subclass of nudask.readers.Reader" in broken["plain"]
    assert "it does not define metadata_fields, event_weights, read" in broken["half"]
    assert "its name attribute is 'toy', not 'wrongname'" in broken["wrongname"]
    assert "(entry point of nudask-test-plugins 1.0)" in broken["raising"]
    with pytest.raises(
        ConfigError, match=r"reader 'raising' .* cannot be used: cannot load it \(ImportError"
    ):
        get_reader("raising")


def test_warnings_come_once_per_refresh(plugins):
    _, first = _collect(available_readers)
    _, again = _collect(available_readers)
    assert len(first) == 7 and again == []


def test_guessing_order_and_broken_plugins_do_not_break_it(plugins, nova_file, bnb_files, tmp_path):
    with runtime_warnings() as messages:
        assert guess_reader(nova_file) == "nova"
        assert guess_reader(bnb_files[0]) == "microboone"
        assert guess_reader(tmp_path / "first.toy") == "first"  # guess_priority -1 goes before the rest
        assert guess_reader(tmp_path / "x.atoy") == "atoy"
    assert len(messages) == 7  # the broken plugins, on first use; none needed sniffy
    with runtime_warnings() as messages:
        assert guess_reader(tmp_path / "x.toy") == "toy"  # after sniffy, which fails
    assert [m.split(":")[0] for m in messages] == ["reader plugin 'sniffy'"]
    with runtime_warnings() as messages, pytest.raises(InputError) as err:
        guess_reader(tmp_path / "x.unknown")
    assert f"no reader recognises it (tried first, {', '.join(BUILTINS)}, atoy, points, sniffy, toy)" in str(
        err.value
    )
    assert "--reader NAME" in str(err.value)
    assert messages == [
        "reader plugin 'sniffy': guess_can_open failed "
        "(RuntimeError: sniffing needs a licence server); skipped"
    ]


def test_builtins_alone_guess_in_the_stated_order(tmp_path, monkeypatch):
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: [])
    refresh_readers()
    try:
        assert available_readers() == [*BUILTINS]
        with pytest.raises(InputError, match=rf"tried {', '.join(BUILTINS)}\)"):
            guess_reader(tmp_path / "notes.txt")
    finally:
        monkeypatch.undo()
        refresh_readers()


def test_the_same_entry_point_seen_twice_is_no_duplicate(monkeypatch):
    ep = metadata.EntryPoint("nova", "nudask.readers.nova:NOvAReader", "nudask.readers")
    monkeypatch.setattr(metadata, "entry_points", lambda group: [ep, ep] if group == "nudask.readers" else [])
    refresh_readers()
    try:
        names, messages = _collect(available_readers)
        assert names == [*BUILTINS] and messages == []
    finally:
        monkeypatch.undo()
        refresh_readers()


def test_misspelt_and_missing_options_are_one_line_config_errors(plugins):
    _collect(available_readers)
    with pytest.raises(ConfigError) as err:
        get_reader("toy", sise=3, label="a")
    assert str(err.value) == (
        "reader 'toy' has no option 'sise' (did you mean 'size'?); its options: size, scale, label"
    )
    with pytest.raises(ConfigError, match=r"reader 'toy' needs option 'label' \(-O label=VALUE\)"):
        get_reader("toy")
    toy = get_reader("toy", label="x", size=3)
    assert (toy.size, toy.scale, toy.label) == (3, 1.0, "x")
    with pytest.raises(
        ConfigError, match=r"unknown reader 'tyo' \(did you mean 'toy'\?\); installed readers: "
    ):
        get_reader("tyo")


def test_builtin_options_are_checked_before_the_reader_is_made():
    with pytest.raises(ConfigError) as err:
        get_reader("microboone", geomtry="small")
    assert str(err.value) == (
        "reader 'microboone' has no option 'geomtry' (did you mean 'geometry'?); "
        "its options: geometry, factor, cutoff, saturation, fast_inflate, kernel"
    )
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"reader 'nova' has no option 'factor'; its options: none"):
        get_reader("nova", factor=6)


def test_listing_shows_descriptions_suffixes_and_options(plugins):
    text, _ = _collect(describe_readers)
    blocks = {b.split(":")[0]: b for b in text.split("\n\n")}
    assert list(blocks) == ["first", *BUILTINS, "atoy", "points", "sniffy", "toy"]
    assert blocks["toy"] == "\n".join(
        [
            "toy: toy test format",
            "  class: toyplug:ToyReader (entry point of nudask-test-plugins 1.0)",
            "  suffixes: .toy",
            "  options (-O KEY=VALUE, shown with their defaults):",
            "    -O size=4       (int) Pixels per side of the image.",
            "    -O scale=1.0    (float) multiplies every value",
            "    -O label=VALUE  (str, required)",
        ]
    )
    assert "    -O geometry=microboone  (str)" in blocks["microboone"]
    assert "    -O cutoff=null          (float | None)" in blocks["microboone"]
    assert "  suffixes: .h5 .hdf5" in blocks["nova"] and "  options: none" in blocks["nova"]
    assert "NOvA-like pixel maps" in blocks["nova"]


def test_nudask_readers_command(plugins, capsys):
    expected, _ = _collect(describe_readers)
    assert main(["readers"]) == 0
    assert capsys.readouterr().out == expected + "\n"
