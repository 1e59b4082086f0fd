"""Selections: a closed grammar evaluated with numpy; anything outside it is refused, and runs nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nudask.errors import ConfigError
from nudask.selection import MAX_DEPTH, evaluate, parse


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(7)
    n = 200
    energy = rng.exponential(2.0, n)
    energy[::17] = np.nan
    return pd.DataFrame(
        {
            "run": rng.integers(1, 6, n),
            "event": np.arange(n),
            "nu_pdg": rng.choice([-14, -12, 12, 14], n),
            "is_cc": rng.integers(0, 2, n),
            "nu_energy": energy,
            "lep_energy": energy * rng.uniform(0, 1, n),
            "flag": rng.integers(0, 2, n).astype(bool),
            "category": rng.choice(["nue_cc", "numu_cc", "nc"], n),
        }
    )


@pytest.mark.parametrize(
    "text",
    [
        "nu_energy > 0.5 and is_cc == 1",
        "nu_energy < 4",
        "nu_energy >= 1e-1 or run != 3",
        "0.5 < nu_energy <= 4",
        "1 <= run < 3 < event",
        "abs(nu_pdg) == 12",
        "event % 2 == 0 or abs(nu_pdg) == 12",
        "nu_pdg in [-12, 12]",
        "nu_pdg not in (14, -14)",
        "category in ['nue_cc', 'numu_cc']",
        'category == "nc" or category < "nue_cc"',
        "category not in ['nc']",
        "not (is_cc == 1 and run == 2)",
        "not is_cc == 1",
        "lep_energy / nu_energy > 0.25",
        "nu_energy * 2 - lep_energy + 1 >= 3.5",
        "-nu_pdg == 14",
        "run - 3 * 2 < -2",
        "(run == 1 or run == 2) and (nu_energy > 1 or category == 'nc')",
        "flag",
        "flag == True and run > -1",
        "nu_energy > 2.5E+0",
        "nu_energy < .5",
    ],
)
def test_selections_match_pandas(frame, text):
    expected = frame.eval(text, engine="python").to_numpy(bool)
    got = evaluate(text, frame)
    assert got.dtype == bool and got.shape == (len(frame),)
    assert np.array_equal(got, expected), text
    columns = {c: frame[c].to_numpy() for c in frame}  # a plain mapping of numpy columns works alike
    assert np.array_equal(parse(text).mask(columns), expected)


def test_selections_match_numpy_by_hand(frame):
    e, pdg, cc = (frame[c].to_numpy() for c in ("nu_energy", "nu_pdg", "is_cc"))
    cat = frame["category"].to_numpy()
    cases = {
        "nu_energy > 0.5 and is_cc == 1": (e > 0.5) & (cc == 1),
        "0.5 < nu_energy <= 4 and not category == 'nc'": (0.5 < e) & (e <= 4) & (cat != "nc"),
        "abs(nu_pdg) in [12] or nu_energy != nu_energy": (np.abs(pdg) == 12) | np.isnan(e),
        "True": np.ones(len(e), bool),
        "False or is_cc == 0": cc == 0,
        "category in []": np.zeros(len(e), bool),
    }
    for text, expected in cases.items():
        assert np.array_equal(evaluate(text, frame), expected), text


def test_unsigned_columns_do_not_wrap_around():
    cols = {"run": np.array([1, 2, 3], np.uint32), "subrun": np.array([2, 2, 2], np.uint32)}
    assert evaluate("run - subrun < 0", cols).tolist() == [True, False, False]
    assert evaluate("-run < -2", cols).tolist() == [False, False, True]


def test_columns_used_and_long_chains():
    assert parse("is_cc == 1 and nu_energy > run or run == 2").columns == ("is_cc", "nu_energy", "run")
    text = " or ".join(f"run == {k}" for k in range(3000))  # long, flat: no deep recursion
    assert evaluate(text, {"run": np.array([5, 2999, 3000])}).tolist() == [True, True, False]


PAYLOADS = [  # (selection, the token named, its position)
    ("@pd.io.common.os.system('id > pwned.txt') == 1", "'@'", 1),
    ("__import__('os').system('touch pwned')", "'__import__('", 1),
    ("a.__class__", "'.'", 2),
    ("a.__class__.__mro__[1].__subclasses__()", "'.'", 2),
    ("a > 0 or os.system('touch pwned') == 0", "'.'", 12),
    ("open('pwned', 'w') == 1", "'open('", 1),
    ('a > 0 and exec(\'open("pwned", "w")\') == 1', "'exec('", 11),
    ("a[0] == 1", "'['", 2),
    ("(a)(1) == 1", "'('", 4),
    ("`a` > 0", "'`'", 1),
    ("(lambda: open('pwned', 'w'))() == 1", "'lambda'", 2),
    ("a > 0; __import__('os').system('touch pwned')", "';'", 6),
    ("a == 1 | a == 2", "'|'", 8),
    ("a = 1", "'='", 3),
    ("a ** 2 > 1", "'**'", 3),
    ("a if a else a", "'if'", 3),
    ("import os", "'import'", 1),
    ("a == {'x': 1}", "'{'", 6),
]


@pytest.mark.parametrize("text, token, pos", PAYLOADS)
def test_anything_outside_the_grammar_is_refused_and_runs_nothing(text, token, pos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame({"a": [1, 2], "pd": [1, 1], "os": [0, 0]})
    for attempt in (lambda: parse(text), lambda: evaluate(text, frame), lambda: parse(text, ["a"])):
        with pytest.raises(ConfigError) as err:
            attempt()
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith("task.select: ")
        assert f"{token} at position {pos} is not allowed" in message, message
    assert list(tmp_path.iterdir()) == []  # no pwned.txt, no pwned


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the selection is empty"),
        ("nu_energy > ", "the selection ends where a column, number or string is expected"),
        ("(nu_energy > 1", r"expected '\)' at the end"),
        ("nu_energy > 1 2", "expected 'and', 'or' or the end of the selection at position 15, got '2'"),
        ("nu_energy in 5", r"expected a \[list\] of numbers or strings after in at position 14, got '5'"),
        ("run in [event]", "a list after in holds only numbers, strings or True/False; got 'event'"),
        ("run in [1, 'a']", "'in' at position 5 looks for a number among 'a'"),
        ("'open", "unterminated string starting at position 1"),
        ("1abc > 2", "'1abc' at position 1 is not allowed: not a number"),
        ("'a' < 1", "'<' at position 5 compares a text with a number"),
        ("run + 'x' > 1", "'\\+' at position 5 needs numbers, got text"),
        ("1 and 2", "'and' at position 3 joins conditions, got a number"),
        ("1 + 2", "the selection is a number, not a condition"),
        ("true", "'true' at position 1 is not allowed: write True"),
        ("x > 1 && y", "'&' at position 7 is not allowed: use 'and'"),
        ("abs x", "expected '\\(' after abs at position 5"),
    ],
)
def test_syntax_and_type_errors_name_the_place(text, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse(text)
    assert "\n" not in str(err.value) and str(err.value).startswith("task.select: ")


def test_deep_nesting_is_refused_not_a_crash():
    for text in ("(" * (MAX_DEPTH + 5) + "x" + ")" * (MAX_DEPTH + 5), "not " * 2000 + "x", "-" * 5000 + "x"):
        with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels deep"):
            parse(text)


def test_column_errors_name_the_known_columns(frame):
    with pytest.raises(ConfigError) as err:
        evaluate("nu_enrgy < 4 and run == 1", frame)
    message = str(err.value)
    assert message.startswith(
        "task.select: unknown column 'nu_enrgy' at position 1 (did you mean 'nu_energy'?)"
    )
    assert "the columns are: category, event, flag, is_cc, lep_energy, nu_energy, nu_pdg, run" in message
    with pytest.raises(ConfigError, match="unknown column 'energy'"):
        parse("energy > 1", ["run"])
    with pytest.raises(ConfigError, match="'==' at position 10 compares a text with a number"):
        evaluate("category == 1", frame)
    with pytest.raises(
        ConfigError, match="the selection is a number, not a condition .compare it, e.g. is_cc == 1"
    ):
        evaluate("is_cc", frame)
    with pytest.raises(ConfigError, match="'and' at position 15 joins conditions, got a number"):
        evaluate("nu_energy > 1 and is_cc", frame)
    vertex = {"vtx": pd.Series([np.zeros(3), np.ones(3)])}
    with pytest.raises(
        ConfigError, match="column 'vtx' holds ndarray values, not only numbers or only strings"
    ):
        evaluate("vtx > 0", vertex)


def test_the_key_prefix_can_be_changed():
    with pytest.raises(ConfigError, match=r"^describe.select: '@' at position 1"):
        parse("@x", key="describe.select")
