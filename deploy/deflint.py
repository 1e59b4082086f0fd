"""Static check of a Singularity/Apptainer definition file, without apptainer.

spython (pip install spython) parses the file, but it is lenient: a file with
no Bootstrap line passes, and a misspelled section (%psot) is silently
dropped together with its commands. So this adds the checks apptainer's own
parser makes (header keys, bootstrap agent, section names), then lets spython
convert the recipe to a Dockerfile as a sanity check of the parse.

usage: python deflint.py FILE.def [...]   -> exit 1 if any file has errors
Without spython installed the apptainer-rule checks still run (a warning
says the parse check was skipped).
"""

from __future__ import annotations

import re
import sys

# apptainer 1.4 (pkg/build/types/parser/deffile.go)
SECTIONS = {
    "help",
    "setup",
    "files",
    "labels",
    "environment",
    "pre",
    "post",
    "runscript",
    "test",
    "startscript",
    "arguments",
    "apphelp",
    "appenv",
    "appfiles",
    "appinstall",
    "applabels",
    "apprun",
    "apptest",
    "appstart",
}
AGENTS = {
    "library",
    "docker",
    "docker-daemon",
    "docker-archive",
    "shub",
    "oras",
    "localimage",
    "oci",
    "oci-archive",
    "scratch",
    "debootstrap",
    "yum",
    "dnf",
    "zypper",
    "busybox",
    "arch",
    "ubuntu",
    "mock",
}
NEEDS_FROM = {
    "library",
    "docker",
    "docker-daemon",
    "docker-archive",
    "shub",
    "oras",
    "localimage",
    "oci",
    "oci-archive",
}


def lint(path: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the def file at ``path``."""
    errs, warns = [], []
    with open(path) as f:
        text = f.read()
    lines = text.splitlines()
    # header: everything before the first %section, per stage
    stages = re.split(r"(?im)^\s*bootstrap\s*:", text)
    if len(stages) < 2:
        errs.append("no 'Bootstrap:' header (apptainer: no bootstrap specification found)")
    for st in stages[1:]:
        head = "Bootstrap:" + re.split(r"(?m)^%", st, maxsplit=1)[0]
        kv = {}
        for ln in head.splitlines():
            if ln.strip() and not ln.strip().startswith("#"):
                if ":" not in ln:
                    errs.append(f"bad header line: {ln!r}")
                    continue
                k, v = ln.split(":", 1)
                kv[k.strip().lower()] = v.strip()
        agent = kv.get("bootstrap", "")
        if agent not in AGENTS:
            errs.append(f"unknown bootstrap agent {agent!r}")
        if agent in NEEDS_FROM and not kv.get("from"):
            errs.append(f"'Bootstrap: {agent}' needs a 'From:' line")
    agents = set(re.findall(r"(?im)^\s*bootstrap\s*:\s*(\S+)", text))
    seen = set()
    for n, ln in enumerate(lines, 1):
        m = re.match(r"^%(\w+)", ln)
        if m:
            name = m.group(1).lower()
            if name not in SECTIONS:
                errs.append(f"line {n}: invalid section %{m.group(1)}")
            elif name in seen and not name.startswith("app"):
                warns.append(f"line {n}: section %{name} repeated (apptainer appends)")
            seen.add(name)
    if "runscript" not in seen:
        warns.append("no %runscript")
    # let spython parse it and write a Dockerfile; spython only knows
    # 'Bootstrap: docker' (others: NotImplementedError "Only docker is supported")
    if errs or agents != {"docker"}:
        return errs, warns
    try:
        from spython.main.parse.parsers import SingularityParser
        from spython.main.parse.writers import DockerWriter
    except ImportError:
        warns.append("spython not installed: parse check skipped (pip install spython)")
        return errs, warns
    try:
        parser = SingularityParser(path)
        docker = DockerWriter(parser.recipe).convert()
        if "FROM" not in docker:
            errs.append("spython produced no FROM")
    except SystemExit as e:  # spython calls bot.exit on errors
        errs.append(f"spython failed (exit {e.code})")
    except Exception as e:
        errs.append(f"spython failed: {type(e).__name__}: {e}")
    return errs, warns


if __name__ == "__main__":
    bad = 0
    for p in sys.argv[1:]:
        errs, warns = lint(p)
        for w in warns:
            print(f"{p}: warning: {w}")
        for e in errs:
            print(f"{p}: error: {e}")
        print(f"{p}: {'FAIL' if errs else 'OK'}")
        bad += bool(errs)
    sys.exit(1 if bad else 0)
