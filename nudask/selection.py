"""Event selections: a small, closed grammar over metadata columns, evaluated with numpy.

A selection is data, not code: it is tokenized and parsed here into a tree of a
few node kinds, and that tree is evaluated column-wise with numpy. Nothing in it
can name a module, an attribute, a function (other than ``abs``) or a local
variable, so a job file or a run folder's ``config.yaml`` cannot run anything.

Examples::

    nu_energy > 0.5 and is_cc == 1
    category in ['nue_cc', 'numu_cc'] and not run == 7
    abs(nu_pdg) == 12 or 0.2 <= lep_energy / nu_energy < 0.8

Grammar (loosest binding first)::

    selection  := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum (CMP sum)*              CMP: == != < <= > >=  (chains: a < b < c)
                | sum ["not"] "in" list
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/" | "%") unary)*
    unary      := ("-" | "+") unary | atom
    atom       := NUMBER | STRING | "True" | "False" | COLUMN
                | "abs" "(" sum ")" | "(" selection ")"
    list       := "[" [literal ("," literal)* [","]] "]"   (or the same in "(" ")")
    literal    := ["-" | "+"] NUMBER | STRING | "True" | "False"

``NUMBER``: ``12``, ``-3``, ``0.5``, ``.5``, ``1e-3``, ``2.5E+4``. ``STRING``: text in
single or double quotes (no escapes; use the other quote to include one).
``COLUMN``: a bare name of one of the columns the caller passes (letters, digits,
``_``). Comparisons chain as in Python (``a < b < c`` is ``a < b and b < c``).
Numbers compare with numbers (``True``/``False`` count as 1/0), strings with
strings; ``and``/``or``/``not`` take conditions, and the whole selection must be
one. Anything else (attributes, calls, subscripts, ``@``, backticks, ``lambda``,
``;``, ``&``/``|``/``~``, ...) is refused with a one-line
:class:`~nudask.errors.ConfigError` naming the token and its position
(1-based characters).

>>> import numpy as np
>>> cols = {"nu_energy": np.array([0.2, 0.8, 3.0]), "is_cc": np.array([1, 1, 0]),
...         "category": np.array(["nue_cc", "numu_cc", "nc"], dtype=object)}
>>> evaluate("nu_energy > 0.5 and is_cc == 1", cols).tolist()
[False, True, False]
>>> evaluate("category in ['nue_cc', 'nc']", cols).tolist()
[True, False, True]
>>> try:
...     parse("nu_energy.__class__")
... except ConfigError as err:
...     print(err)
task.select: '.' at position 10 is not allowed: attribute access is not part of a selection
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["GRAMMAR", "Selection", "evaluate", "parse"]

GRAMMAR = (
    "a selection compares metadata columns with numbers, 'quoted' strings or True/False "
    "(== != < <= > >=, in / not in [...]), with + - * / % and abs(), joined by and / or / not "
    "and parentheses"
)

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
KEYWORDS = ("and", "or", "not", "in", "True", "False", "abs")
MAX_DEPTH = 50  # parentheses, not, signs and abs() inside one another
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOLS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",")
_REFUSED = {  # symbols with a reason (anything else unknown is refused generically)
    ".": "attribute access is not part of a selection",
    "@": "'@' names Python variables, which a selection cannot use",
    "`": "backtick-quoted names are not part of a selection",
    ";": "a selection is one expression",
    "&": "use 'and'",
    "|": "use 'or'",
    "~": "use 'not'",
    "!": "use 'not' (or != for 'not equal')",
    "=": "use == to compare",
    "**": "powers are not part of a selection",
    "//": "use / or %",
    "{": "only [...] lists are part of a selection",
    "}": "only [...] lists are part of a selection",
    ":": "slices and mappings are not part of a selection",
    "\\": "line continuations are not part of a selection",
    "#": "comments are not part of a selection",
}


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "str", "name", "op", "end"
    text: str
    pos: int  # 0-based offset in the selection


@dataclass(frozen=True)
class Node:
    kind: str  # num str bool col neg abs arith cmp in and or not
    pos: int
    token: str
    args: tuple = ()
    value: Any = None  # a literal, or the operator tokens / list items of the node


def _where(tok: Token) -> str:
    return "at the end" if tok.kind == "end" else f"at position {tok.pos + 1}"


def _show(tok: Token) -> str:
    return "the end of the selection" if tok.kind == "end" else repr(tok.text)


class _Parser:
    def __init__(self, text: str, key: str):
        self.text, self.key = text, key
        self.tokens: list[Token] = []
        self._pending = self._tokenize()  # read as the parser goes: the first problem is reported
        self.i = self.depth = 0

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.key}: {message}")

    def refuse(self, tok: Token, reason: str) -> ConfigError:
        return self.error(f"{_show(tok)} {_where(tok)} is not allowed: {reason}")

    # tokens -------------------------------------------------------------------------------

    def _tokenize(self) -> Iterator[Token]:
        text, i = self.text, 0
        while i < len(text):
            c = text[i]
            if c.isspace():
                i += 1
                continue
            m = _NUMBER.match(text, i)
            if m and c == ".":  # '.5' right after an operand is an attribute, not a number
                before = text[:i].rstrip()[-1:]
                m = None if before and (before.isalnum() or before in "_)]'\"") else m
            if m:
                end = m.end()
                if end < len(text) and (text[end].isalnum() or text[end] in "_."):
                    bad = re.match(r"[\w.]+", text[i:]).group()  # type: ignore[union-attr]  # text[i] is a digit
                    raise self.refuse(Token("num", bad, i), "not a number (nor a column name)")
                yield Token("num", m.group(), i)
                i = end
                continue
            if c in "'\"":
                end = text.find(c, i + 1)
                if end < 0:
                    raise self.error(f"unterminated string starting at position {i + 1}: close it with {c}")
                yield Token("str", text[i + 1 : end], i)
                i = end + 1
                continue
            m = _NAME.match(text, i)
            if m:
                name = m.group()
                if keyword.iskeyword(name) and name not in KEYWORDS:
                    raise self.refuse(Token("name", name, i), "Python keywords are not part of a selection")
                yield Token("name", name, i)
                i = m.end()
                continue
            two = text[i : i + 2]
            if two in _REFUSED:
                raise self.refuse(Token("op", two, i), _REFUSED[two])
            sym = two if two in _SYMBOLS else c if c in _SYMBOLS else None
            if sym is None:
                raise self.refuse(Token("op", c, i), _REFUSED.get(c, GRAMMAR))
            yield Token("op", sym, i)
            i += len(sym)
        yield Token("end", "", len(text))

    # parser -------------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        while len(self.tokens) <= self.i + ahead and (not self.tokens or self.tokens[-1].kind != "end"):
            self.tokens.append(next(self._pending))
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    @property
    def tok(self) -> Token:
        return self.peek()

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.text in texts

    def take(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, text: str, what: str) -> Token:
        if not self.at(text):
            raise self.error(f"expected {what} {_where(self.tok)}, got {_show(self.tok)}")
        return self.take()

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("the selection is empty (use null for no selection)")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.unexpected("'and', 'or' or the end of the selection")
        return node

    def unexpected(self, what: str) -> ConfigError:
        tok = self.tok
        if tok.kind == "op" and tok.text == "[":
            return self.refuse(tok, "subscripts are not part of a selection (lists only after in)")
        if tok.kind == "op" and tok.text == "(":
            return self.refuse(tok, "calls are not part of a selection (only abs(...))")
        if tok.kind == "end":
            return self.error(f"expected {what} at the end of the selection")
        return self.error(f"expected {what} {_where(tok)}, got {_show(tok)}")

    def nested(self, tok: Token, parse):
        """``parse()`` one level deeper: bounded, so that no selection exhausts the stack."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.refuse(tok, f"nested more than {MAX_DEPTH} levels deep")
        try:
            return parse()
        finally:
            self.depth -= 1

    def chain(self, kind: str, ops: tuple[str, ...], operand) -> Node:
        """``operand (op operand)*`` as one node (no deep trees for long chains)."""
        first = operand()
        args, tokens = [first], []
        while self.at(*ops):
            tokens.append(self.take())
            args.append(operand())
        if not tokens:
            return first
        return Node(kind, tokens[0].pos, tokens[0].text, tuple(args), tuple(tokens))

    def or_expr(self) -> Node:
        return self.chain("or", ("or",), self.and_expr)

    def and_expr(self) -> Node:
        return self.chain("and", ("and",), self.not_expr)

    def not_expr(self) -> Node:
        if self.at("not"):
            op = self.take()
            return Node("not", op.pos, op.text, (self.nested(op, self.not_expr),))
        return self.comparison()

    def comparison(self) -> Node:
        first = self.sum()
        if self.at("in") or (self.at("not") and self.peek(1).text == "in"):
            op = self.take()
            negate = op.text == "not"
            if negate:
                self.take()
            return Node("in", op.pos, "not in" if negate else "in", (first,), self.literal_list())
        args, ops = [first], []
        while self.at(*COMPARISONS):
            ops.append(self.take())
            args.append(self.sum())
        if not ops:
            return first
        return Node("cmp", ops[0].pos, ops[0].text, tuple(args), tuple(ops))

    def sum(self) -> Node:
        return self.chain("arith", ("+", "-"), self.product)

    def product(self) -> Node:
        return self.chain("arith", ("*", "/", "%"), self.unary)

    def unary(self) -> Node:
        if self.at("-", "+"):
            op = self.take()
            operand = self.nested(op, self.unary)
            return Node("neg" if op.text == "-" else "pos", op.pos, op.text, (operand,))
        return self.atom()

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            return Node("num", tok.pos, tok.text, value=_number(tok.text))
        if tok.kind == "str":
            self.take()
            return Node("str", tok.pos, tok.text, value=tok.text)
        if tok.kind == "name" and tok.text in ("True", "False"):
            self.take()
            return Node("bool", tok.pos, tok.text, value=tok.text == "True")
        if tok.kind == "name" and tok.text in ("true", "false"):
            raise self.refuse(tok, f"write {tok.text.capitalize()}")
        if tok.kind == "name" and tok.text == "abs":
            self.take()
            self.expect("(", "'(' after abs")
            inner = self.nested(tok, self.sum)
            self.expect(")", "')' closing abs(")
            return Node("abs", tok.pos, tok.text, (inner,))
        if tok.kind == "name" and tok.text not in KEYWORDS:
            self.take()
            if self.at("("):
                raise self.refuse(
                    Token("name", f"{tok.text}(", tok.pos),
                    "calls are not part of a selection (only abs(...))",
                )
            return Node("col", tok.pos, tok.text)
        if self.at("("):
            inner = self.nested(self.take(), self.or_expr)
            self.expect(")", "')'")
            return inner
        if tok.kind == "end":
            raise self.error("the selection ends where a column, number or string is expected")
        raise self.error(f"expected a column, number or string {_where(tok)}, got {_show(tok)}")

    def literal_list(self) -> tuple:
        if not self.at("[", "("):
            raise self.error(
                f"expected a [list] of numbers or strings after in {_where(self.tok)}, got {_show(self.tok)}"
            )
        close = "]" if self.take().text == "[" else ")"
        items: list[Node] = []
        while not self.at(close):
            items.append(self.literal())
            if not self.at(","):
                break
            self.take()
        self.expect(close, f"',' or '{close}' in the list")
        return tuple(items)

    def literal(self) -> Node:
        tok = self.tok
        sign = 1
        if self.at("-", "+"):
            sign = -1 if self.take().text == "-" else 1
            if self.tok.kind != "num":
                raise self.error(
                    f"expected a number after the sign {_where(self.tok)}, got {_show(self.tok)}"
                )
        t = self.tok
        if t.kind == "num":
            self.take()
            return Node(
                "num", tok.pos, self.text[tok.pos : t.pos + len(t.text)], value=sign * _number(t.text)
            )
        if t.kind == "str":
            self.take()
            return Node("str", t.pos, t.text, value=t.text)
        if t.kind == "name" and t.text in ("True", "False"):
            self.take()
            return Node("bool", t.pos, t.text, value=t.text == "True")
        raise self.error(
            f"a list after in holds only numbers, strings or True/False; got {_show(t)} {_where(t)}"
        )


def _number(text: str):
    if text.isdigit():
        value = int(text)
        return value if value < 2**63 else float(value)
    return float(text)


# types ----------------------------------------------------------------------------------------

NUM, TEXT, BOOL, ANY = "number", "text", "condition", "any"


def _numeric(kind: str) -> bool:
    return kind in (NUM, BOOL, ANY)


def _infer(node: Node, kinds: Mapping[str, str], key: str) -> str:
    """The kind of ``node`` (number, text, condition; any: a column of unknown kind)."""

    def refuse(message: str) -> ConfigError:
        return ConfigError(f"{key}: {message}")

    k = node.kind
    if k == "num":
        return NUM
    if k == "str":
        return TEXT
    if k == "bool":
        return BOOL
    if k == "col":
        return kinds.get(node.token, ANY)
    if k in ("neg", "pos", "abs", "arith"):
        for j, arg in enumerate(node.args):
            kind = _infer(arg, kinds, key)
            if not _numeric(kind):
                text, pos = _operator(node, j)
                raise refuse(f"{text!r} at position {pos + 1} needs numbers, got {kind}")
        return NUM
    if k in ("and", "or", "not"):
        for j, arg in enumerate(node.args):
            kind = _infer(arg, kinds, key)
            if kind not in (BOOL, ANY):
                text, pos = _operator(node, j)
                raise refuse(f"{text!r} at position {pos + 1} joins conditions, got a {kind}{_example(arg)}")
        return BOOL
    if k == "cmp":
        sides = [_infer(arg, kinds, key) for arg in node.args]
        for op, a, b in zip(node.value, sides, sides[1:]):
            if ANY in (a, b) or (_numeric(a) and _numeric(b)) or (a == b == TEXT):
                continue
            raise refuse(f"{op.text!r} at position {op.pos + 1} compares a {a} with a {b}")
        return BOOL
    if k == "in":
        left = _infer(node.args[0], kinds, key)
        for item in node.value:
            kind = _infer(item, kinds, key)
            if left == ANY:
                left = kind  # the first item sets the kind of the others
            elif (left == TEXT) != (kind == TEXT):
                raise refuse(
                    f"{node.token!r} at position {node.pos + 1} looks for a {left} among "
                    f"{item.token!r} (a {kind}, position {item.pos + 1})"
                )
        return BOOL
    raise AssertionError(k)  # pragma: no cover - the parser makes no other nodes


def _operator(node: Node, j: int) -> tuple[str, int]:
    """The operator (text, position) next to operand ``j`` of ``node``."""
    if node.kind in ("arith", "and", "or"):  # chains: the operator before the operand
        tok = node.value[max(j - 1, 0)]
        return tok.text, tok.pos
    return node.token, node.pos


def _example(node: Node) -> str:
    return f" (compare it, e.g. {node.token} == 1)" if node.kind == "col" else ""


# evaluation ----------------------------------------------------------------------------------


def _column(name: str, values, key: str) -> tuple[str, np.ndarray]:
    """The kind and numpy values of a column (numbers, text or booleans)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ConfigError(f"{key}: column '{name}' holds arrays, not numbers or strings")
    kind = arr.dtype.kind
    if kind == "b":
        return BOOL, arr
    if kind == "u" and arr.dtype.itemsize < 8:
        return NUM, arr.astype(np.int64)  # differences and signs without wrapping around
    if kind in "iuf":
        return NUM, arr
    if kind in "US":
        return TEXT, arr.astype(str)
    if kind == "O":
        missing = np.array([_missing(v) for v in arr], bool)
        present = arr[~missing]
        if all(isinstance(v, str) for v in present):
            return TEXT, np.where(missing, "", arr).astype(str)
        if all(isinstance(v, (int, float, np.number, np.bool_)) for v in present):
            return NUM, np.where(missing, np.nan, arr).astype(np.float64)
        types = sorted({type(v).__name__ for v in present})
        raise ConfigError(
            f"{key}: column '{name}' holds {'/'.join(types)} values, not only numbers or only "
            "strings; a selection can only use scalar columns"
        )
    raise ConfigError(f"{key}: column '{name}' holds {arr.dtype} values, not numbers or strings")


def _missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float):
        return v != v
    return type(v).__name__ in ("NAType", "NaTType")


def _literal(value):
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    return np.str_(value)


_CMP = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "%": np.mod}


def _eval(node: Node, cols: Mapping[str, np.ndarray]):
    k = node.kind
    if k in ("num", "str", "bool"):
        return _literal(node.value)
    if k == "col":
        return cols[node.token]
    if k == "neg":
        x = _as_number(_eval(node.args[0], cols))
        return np.negative(x.astype(np.float64) if x.dtype.kind == "u" else x)
    if k == "pos":
        return _as_number(_eval(node.args[0], cols))
    if k == "abs":
        return np.abs(_as_number(_eval(node.args[0], cols)))
    if k == "arith":
        out = _as_number(_eval(node.args[0], cols))
        for op, arg in zip(node.value, node.args[1:]):
            out = _ARITH[op.text](out, _as_number(_eval(arg, cols)))
        return out
    if k == "not":
        return np.logical_not(_eval(node.args[0], cols))
    if k in ("and", "or"):
        join = np.logical_and if k == "and" else np.logical_or
        out = _eval(node.args[0], cols)
        for arg in node.args[1:]:
            out = join(out, _eval(arg, cols))
        return out
    if k == "cmp":
        values = [_eval(arg, cols) for arg in node.args]
        out = np.bool_(True)
        for op, a, b in zip(node.value, values, values[1:]):
            out = np.logical_and(out, _CMP[op.text](a, b))
        return out
    if k == "in":
        left = np.asarray(_eval(node.args[0], cols))
        items = [item.value for item in node.value]
        if not items:
            hit = np.zeros(left.shape, bool)
        elif left.dtype.kind in "US":
            hit = np.isin(left, np.array(items, dtype=str))
        else:
            hit = np.isin(left, np.array(items, dtype=np.float64))
        return ~hit if node.token == "not in" else hit
    raise AssertionError(k)  # pragma: no cover


def _as_number(x):
    x = np.asarray(x)
    return x.astype(np.int64) if x.dtype.kind == "b" else x


@dataclass(frozen=True)
class Selection:
    """A parsed selection: :meth:`mask` evaluates it on columns."""

    text: str
    tree: Node
    key: str = "task.select"

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names the selection uses, in order of first use."""
        names: list[str] = []

        def walk(node: Node):
            if node.kind == "col" and node.token not in names:
                names.append(node.token)
            for arg in node.args:
                walk(arg)

        walk(self.tree)
        return tuple(names)

    def check_columns(self, known: Iterable[str]) -> None:
        """Refuse a column not in ``known``, naming the known ones."""
        known = [str(c) for c in known]
        have = set(known)

        def walk(node: Node):
            if node.kind == "col" and node.token not in have:
                close = difflib.get_close_matches(node.token, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(
                    f"{self.key}: unknown column '{node.token}' at position {node.pos + 1}{hint}; "
                    f"the columns are: {', '.join(sorted(known))}"
                )
            for arg in node.args:
                walk(arg)

        walk(self.tree)

    def mask(self, columns: Mapping, n_rows: int | None = None) -> np.ndarray:
        """Boolean mask over the rows of ``columns`` (a mapping or DataFrame of columns).

        >>> parse("x % 2 == 0 or not -x < -2").mask({"x": [1, 2, 3]}).tolist()
        [True, True, False]
        """
        self.check_columns(list(columns))
        cols, kinds = {}, {}
        for name in self.columns:
            kinds[name], cols[name] = _column(name, columns[name], self.key)
        kind = _infer(self.tree, kinds, self.key)
        if kind != BOOL:
            raise ConfigError(f"{self.key}: the selection is a {kind}, not a condition{_example(self.tree)}")
        if n_rows is None:
            n_rows = len(next(iter(cols.values()))) if cols else _rows(columns)
        with np.errstate(all="ignore"):
            out = np.asarray(_eval(self.tree, cols), dtype=bool)
        return np.broadcast_to(out, (n_rows,)).copy()


def _rows(columns) -> int:
    if hasattr(columns, "shape"):
        return int(columns.shape[0])
    for values in columns.values():
        return len(values)
    return 0


def parse(text: str, columns: Iterable[str] | None = None, *, key: str = "task.select") -> Selection:
    """Parse ``text``; with ``columns``, also refuse names that are not among them.

    Needs no data: a syntax error, a refused construct or (with literals) a type
    error is found before anything is read.

    >>> parse("is_cc == 1 and nu_energy >= 1e-1").columns
    ('is_cc', 'nu_energy')
    >>> try:
    ...     parse("nu_enrgy < 4", ["nu_energy", "run"])
    ... except ConfigError as err:
    ...     print(err)  # doctest: +NORMALIZE_WHITESPACE
    task.select: unknown column 'nu_enrgy' at position 1 (did you mean 'nu_energy'?);
    the columns are: nu_energy, run
    """
    if not isinstance(text, str):
        raise ConfigError(f"{key}: expected a string, got {text!r}")
    tree = _Parser(text, key).parse()
    kind = _infer(tree, {}, key)
    if kind not in (BOOL, ANY):
        raise ConfigError(f"{key}: the selection is a {kind}, not a condition")
    sel = Selection(text, tree, key)
    if columns is not None:
        sel.check_columns(columns)
    return sel


def evaluate(text: str, columns: Mapping, *, key: str = "task.select") -> np.ndarray:
    """The boolean mask of the selection ``text`` over ``columns`` (mapping or DataFrame)."""
    return parse(text, key=key).mask(columns)
