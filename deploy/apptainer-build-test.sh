#!/usr/bin/env bash
# Really build a project's Singularity/Apptainer def file here and run it.
#
#  1. a bookworm+python3 base SIF is built once (Bootstrap: debootstrap from
#     the Debian mirror apt uses) and cached inside the apptainer root;
#  2. the def's header (e.g. Bootstrap: docker / From: python:3.11-slim, which
#     would need Docker Hub) is swapped for Bootstrap: localimage on that base,
#     and %post is told about the machine's CA bundle (localize_def.py);
#  3. apptainer build --fakeroot, then inspect, %test, and an exec.
#
# usage: apptainer-build-test.sh path/to/Singularity.def [cmd to exec in it]
# The def's directory is the build context (for %files). The SIF
# (<name>.ci.sif), the localized def and the build log go to $APPTAINER_OUT
# (default: the def's directory). Needs deploy/apptainer-up.sh first.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEF=$(realpath "$1"); shift || true
EXEC_CMD=${*:-python -c \"import sys; print(sys.version)\"}
CTX=$(dirname "$DEF"); NAME=$(basename "$DEF" .def)
OUTD=$(realpath "${APPTAINER_OUT:-$CTX}")
ROOT=${APPTAINER_ROOT:-/var/tmp/apptainer-root}
IN="$HERE/apptainer-in-root.sh"
export APPTAINER_ROOT=$ROOT APPTAINER_WORK=$CTX APPTAINER_OUT=$OUTD
log() { printf '[apptainer-build-test] %s\n' "$*" >&2; }
[ -x "$ROOT/usr/bin/apptainer" ] || { log "no apptainer in $ROOT: run $HERE/apptainer-up.sh"; exit 1; }
mkdir -p "$OUTD"

BASE=/var/cache/ci-base-bookworm-python.sif          # path inside the root
if [ ! -s "$ROOT$BASE" ]; then
  log "building base image $BASE (debootstrap bookworm + python3)"
  MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  cat >"$ROOT/var/cache/ci-base.def" <<EOD
Bootstrap: debootstrap
OSVersion: bookworm
MirrorURL: $MIRROR
Include: python3 python3-venv python3-pip python-is-python3 ca-certificates
EOD
  t0=$(date +%s)
  "$IN" "apptainer build --fakeroot --force $BASE /var/cache/ci-base.def" >"$OUTD/apptainer-base.log" 2>&1 \
    || { tail -20 "$OUTD/apptainer-base.log" >&2; exit 1; }
  log "base image built in $(( $(date +%s) - t0 ))s"
fi

LOCAL="$OUTD/.$NAME.ci.def"
python3 "$HERE/localize_def.py" "$DEF" "$BASE" >"$LOCAL"
trap 'rm -f "$LOCAL"' EXIT
log "building $NAME.ci.sif from $(basename "$DEF") (header -> localimage $BASE) into $OUTD"
t0=$(date +%s)
# cwd /src (the def's folder): %files sources are relative to it
# --notest: %test runs below, on the finished image, with the same flags as users'
"$IN" "apptainer build --fakeroot --force --notest \
        --bind /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt \
        /out/$NAME.ci.sif /out/.$NAME.ci.def" >"$OUTD/$NAME.ci.build.log" 2>&1 \
  || { tail -30 "$OUTD/$NAME.ci.build.log" >&2; log "BUILD FAILED (log: $OUTD/$NAME.ci.build.log)"; exit 1; }
log "built in $(( $(date +%s) - t0 ))s: $(du -h "$OUTD/$NAME.ci.sif" | cut -f1)"
# --no-privs: see apptainer-up.sh (no CAP_SYS_RESOURCE in this VM)
t0=$(date +%s)
"$IN" "apptainer inspect /out/$NAME.ci.sif >/dev/null && apptainer test --no-privs /out/$NAME.ci.sif \
       && apptainer exec --no-privs /out/$NAME.ci.sif $EXEC_CMD"
log "%test and exec passed in $(( $(date +%s) - t0 ))s"
log "OK"
