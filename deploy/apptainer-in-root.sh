#!/usr/bin/env bash
# Run a shell command inside the root made by apptainer-up.sh, with the
# current directory (or $APPTAINER_WORK) mounted at /src and, if set,
# $APPTAINER_OUT mounted at /out. Private mount namespace + pivot_root:
# apptainer refuses a plain chroot ("Running inside a weak chrooted
# environment, prefer pivot_root instead of chroot"), and it sets mount
# propagation on "/", which must therefore be a mount point.
# usage: apptainer-in-root.sh 'apptainer build --fakeroot x.sif x.def'
set -euo pipefail
ROOT=${APPTAINER_ROOT:-/var/tmp/apptainer-root}
WORK=${APPTAINER_WORK:-$PWD}
OUTD=${APPTAINER_OUT:-}
[ -x "$ROOT/usr/bin/apptainer" ] || { echo "no apptainer in $ROOT: run deploy/apptainer-up.sh" >&2; exit 1; }
# shellcheck disable=SC2016  # the inner script expands its own "$1"... arguments
exec unshare -m --propagation private bash -c '
  set -e
  R=$1; W=$2; O=$3; shift 3
  mount --bind "$R" "$R"
  mount -t proc proc "$R/proc"
  mount --rbind /sys "$R/sys"
  mount --rbind /dev "$R/dev"
  mount -t tmpfs tmpfs "$R/tmp"
  mkdir -p "$R/src" "$R/out" "$R/.oldroot"; mount --bind "$W" "$R/src"
  if [ -n "$O" ]; then mount --bind "$O" "$R/out"; fi
  cp /etc/resolv.conf /etc/hosts "$R/etc/"   # apptainer binds /etc/hosts
  cd "$R"; pivot_root . .oldroot; cd /
  umount -l /.oldroot
  exec /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
       /bin/bash -c "cd /src && $*"
' _ "$ROOT" "$WORK" "$OUTD" "$*"
