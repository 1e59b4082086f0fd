"""The import graph of nudask: no cycle through the command lines and the training code.

A static check (every ``import`` in a module, in functions too, except the
``if __name__ == "__main__":`` block that only runs as a script), so that it
is quick and sees lazy imports a run-time check would miss.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import nudask

ENTRY_MODULES = [
    "nudask.cli",
    "nudask.evaluate",
    "nudask.train.__main__",
    "nudask.train.evaluate",
    "nudask.train.fit",
]


def _module_names(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_main_block(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    tree.body = [n for n in tree.body if not _is_main_block(n)]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            mod = ".".join(p for p in (base if node.level else "", node.module or "") if p)
            for alias in node.names:  # `from . import metrics` imports the submodule
                found.add(f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in modules else mod)
    return {m for m in found if m in modules and m != name}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = _module_names(root, package)
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str]:
    """A shortest import path from ``start`` back to itself, or [] if there is none."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        here = todo.pop(0)
        for nxt in sorted(graph[here]):
            if nxt == start:
                return [*paths[here], start]
            if nxt not in paths:
                paths[nxt] = [*paths[here], nxt]
                todo.append(nxt)
    return []


@pytest.fixture(scope="module")
def graph():
    return import_graph(Path(nudask.__file__).parent, "nudask")


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_no_import_cycle_through(graph, module):
    assert module in graph
    assert cycle_through(graph, module) == []


def test_the_command_lines_reuse_the_training_parsers(graph):
    assert {"nudask.train.__main__", "nudask.evaluate", "nudask.errors"} <= graph["nudask.cli"]
    assert "nudask.train.evaluate" in graph["nudask.evaluate"]  # lazily, when it runs
    assert "nudask.train.__main__" not in graph["nudask.train.evaluate"]


def test_the_check_finds_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("from .. import c\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("import pkg.c\nif __name__ == '__main__':\n    import pkg.d\n")
    g = import_graph(pkg, "pkg")
    assert cycle_through(g, "pkg.a") == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    assert cycle_through(g, "pkg.d") == []


def test_the_command_line_does_not_import_keras():
    code = (
        "import sys, nudask.cli\n"
        "nudask.cli._parser().parse_args(['train', '--print-config'])\n"
        "bad = [m for m in ('keras', 'tensorflow', 'nudask.train.evaluate') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Heavy modules by where they may load: none for `import nudask` or `nudask --help` (every
# spawned worker re-imports the command's __main__); the modules of a preprocess task skip
# the reading, plotting and training side (pyarrow loads pandas later, at its first array).
NEVER_AT_START = ["tensorflow", "keras", "torch", "jax", "matplotlib", "bokeh", "optuna", "PIL"]
READING_SIDE = ["pandas", "pyarrow.dataset", "sklearn", "scipy"]
LOADED = "import json, sys\nprint(json.dumps(sorted(sys.modules)))"


def _loaded_after(code: str) -> set[str]:
    argv = [sys.executable, "-c", f"{code}\n{LOADED}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import nudask",
        "import nudask.cli\nfor argv in (['--help'], ['preprocess', '--help']):\n"
        "    try:\n        nudask.cli.main(argv)\n    except SystemExit:\n        pass",
    ],
    ids=["import nudask", "nudask --help"],
)
def test_starting_nudask_imports_nothing_heavy(code):
    loaded = _loaded_after(code)
    assert "nudask" in loaded
    assert sorted(loaded & {*NEVER_AT_START, *READING_SIDE, "distributed", "h5py", "pyarrow"}) == []


def test_a_preprocess_task_imports_only_the_writing_side():
    loaded = _loaded_after("import nudask.pipeline, nudask.readers.microboone, nudask.__main__")
    assert {"nudask.pipeline", "nudask.dataset.write", "h5py", "pyarrow"} <= loaded  # the check sees imports
    assert sorted(loaded & {*NEVER_AT_START, *READING_SIDE, "nudask.dataset.read", "nudask.describe"}) == []
