"""Make a locally buildable copy of a Singularity/Apptainer def file.

Swaps its bootstrap header (e.g. ``Bootstrap: docker`` / ``From: python:3.11-slim``,
which needs Docker Hub) for ``Bootstrap: localimage`` on a base SIF built here,
and makes ``%post`` trust this machine's CA bundle (TLS goes through a proxy CA).

usage: python localize_def.py IN.def BASE.sif > OUT.def
"""

from __future__ import annotations

import re
import sys

CA = "/etc/ssl/certs/ca-certificates.crt"
HEADER_KEYS = ("bootstrap", "from", "stage", "mirrorurl", "osversion", "include", "registry", "namespace")


def localize(text: str, base: str) -> str:
    """``text`` with its header pointing at the local image ``base`` and CA exports in %post."""
    m = re.search(r"^%\w+", text, re.M)
    header, body = (text[: m.start()], text[m.start() :]) if m else (text, "")
    keep = [ln for ln in header.splitlines() if ln.split(":")[0].strip().lower() not in HEADER_KEYS]
    ca = f"    export PIP_CERT={CA} REQUESTS_CA_BUNDLE={CA} SSL_CERT_FILE={CA}\n"
    body = re.sub(r"^(%post[^\n]*\n)", lambda mm: mm.group(1) + ca, body, count=1, flags=re.M)
    return f"Bootstrap: localimage\nFrom: {base}\n" + "\n".join(keep) + "\n" + body


if __name__ == "__main__":
    src, base = sys.argv[1], sys.argv[2]
    with open(src) as f:
        sys.stdout.write(localize(f.read(), base))
