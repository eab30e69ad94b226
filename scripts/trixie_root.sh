# shellcheck shell=bash
# The Debian 13 (trixie) root of the checks against LibTorch 2.x (libtorch2_check.sh: CPU;
# cuda_check.sh: CUDA and NCCL), made with debootstrap from a Debian 12 machine. Sourced by
# them; needs root and Debian's package mirror ($DEBIAN_MIRROR).

# setup.sh's packages that the build and its tests use (not the fuzzers' or the browser), less
# LibTorch and gloo, whose CPU and CUDA builds differ.
trixie_packages="build-essential cmake ccache pkg-config git libopencv-dev nlohmann-json3-dev \
  libspdlog-dev libcli11-dev libgtest-dev libopenblas0-openmp libblas-dev libprotobuf-dev \
  protobuf-compiler libarchive-dev libjemalloc-dev libturbojpeg0-dev libdnnl-dev"

# trixie_in ROOT [COMMAND]: runs COMMAND (a bash command line; else the script on stdin) in
# ROOT, at the lowest priority (the machine may be shared).
trixie_in() {
  if [ $# -gt 1 ]; then nice -n 19 chroot "$1" bash -c "$2"; else nice -n 19 chroot "$1" bash -s; fi
}

# trixie_bootstrap ROOT: a minimal trixie in ROOT (main, contrib, non-free), unless one is there.
trixie_bootstrap() {
  local root=$1 mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  [ -x "$root/bin/bash" ] ||
    nice -n 19 debootstrap --variant=minbase trixie "$root" "$mirror" >/dev/null
  echo "deb $mirror trixie main contrib non-free" >"$root/etc/apt/sources.list"
  cp /etc/resolv.conf "$root/etc/"
}

# trixie_install ROOT PACKAGE...: installs our packages and PACKAGE... where ROOT lacks one.
trixie_install() {
  local root=$1 missing
  shift
  # One line per package; an unknown package's is dpkg-query's complaint.
  missing=$(trixie_in "$root" "dpkg-query -W -f='\${db:Status-Abbrev}\n' $trixie_packages $* 2>&1" |
    grep -vc '^ii ' || true)
  [ "$missing" = 0 ] && return 0
  trixie_in "$root" "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends $trixie_packages $* >/dev/null && apt-get clean"
}

# trixie_enter ROOT: /proc, /sys, /dev and ../shared (at /work/shared) in ROOT, unmounted when
# the calling script exits.
trixie_mounted=()
trixie_unmount() { for m in "${trixie_mounted[@]}"; do umount -l "$m" || true; done; }
trixie_enter() {
  local root=$1 m
  trap trixie_unmount EXIT
  for m in proc sys dev; do
    if ! mountpoint -q "$root/$m"; then
      mount --rbind "/$m" "$root/$m" && trixie_mounted+=("$root/$m")
    fi
  done
  local shared
  shared=$(cd ../shared && pwd)
  mkdir -p "$root/work/shared"
  # A ../shared mounted by an earlier run that was stopped, since replaced: the fixtures would
  # be missing and the tests that read them skip.
  if mountpoint -q "$root/work/shared" &&
    [ "$(stat -c %d:%i "$shared")" != "$(stat -c %d:%i "$root/work/shared")" ]; then
    umount -l "$root/work/shared"
  fi
  if ! mountpoint -q "$root/work/shared"; then
    mount --bind "$shared" "$root/work/shared" && trixie_mounted+=("$root/work/shared")
  fi
}

# trixie_build ROOT: this checkout as committed (what is tested is what would land), cloned to
# ROOT/work/samdistill beside ../shared, built there with warnings as errors.
trixie_build() {
  trixie_enter "$1"
  rm -rf "$1/work/samdistill"
  git clone -q "$(pwd)" "$1/work/samdistill"
  trixie_in "$1" "cd /work/samdistill && SAMDISTILL_WERROR=ON bash scripts/build.sh"
}
