#!/usr/bin/env bash
# install-deps.sh: installs the Debian 12 packages stampd needs, and nothing
# that a clean machine (debootstrap minbase plus git) is assumed to have.
# Idempotent: installs only what is missing.
#
#   deploy/install-deps.sh --build-only   what building the stampd binary needs
#   deploy/install-deps.sh                that, plus the test suite's packages
#
# Both lists are checked on a fresh Debian 12 root by CI (.ci/run), so a
# package missing here fails CI rather than a newcomer's first command.
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev            # Asio with C++20 coroutines (1.74 has a g++ 12 bug)
  libssl-dev
  libunbound-dev              # its pkg-config file requires (privately) these three:
  libevent-dev nettle-dev     # libevent, and hogweed + nettle
  libtomlplusplus-dev
  prometheus-cpp-dev
  libcli11-dev                # CLI11, header-only: the command line
  libcrypt-dev                # crypt_rn: the AUTH users file's yescrypt/sha512-crypt/bcrypt hashes
)
test_pkgs=(
  libgtest-dev libgmock-dev libbenchmark-dev
  git debootstrap             # clean Debian roots: quick start, .deb and image tests
  swaks
  whois                       # mkpasswd: the AUTH tests check hashes it writes
  python3 python3-dkim python3-nacl python3-yaml python3-dnspython
  python3-authres             # dkimpy's ARC sealer (arc_sign) makes the incoming chains in test_arc.py
  libyaml-cpp-dev             # reads the RFC 7208 SPF test suite in unit tests
  libmail-dkim-perl
  opendkim opendkim-tools
  postfix
  prometheus
  unbound ldnsutils
  haproxy                     # in front of three replicas (tests/integration/test_haproxy.py)
  openssl
  procps time
  systemd                     # systemd-analyze verify on the unit
  dpkg-dev file               # cpack: dpkg-shlibdeps (the .deb's Depends:), file (finds the ELF files)
  podman buildah runc fuse-overlayfs uidmap slirp4netns  # builds and runs the image (tests/deploy/test_container.py)
  clang-tidy                  # tests/lint/clang_tidy.sh
  clang libclang-rt-14-dev    # libFuzzer (only recommended by clang): tests/fuzz/run_fuzzers.sh
)

want=("${build_pkgs[@]}")
if [ "${1:-}" != "--build-only" ]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Postfix asks how it is used; "Local only" keeps it off the network.
if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
  echo "postfix postfix/main_mailer_type select Local only" | $SUDO debconf-set-selections
  echo "postfix postfix/mailname string stampd-test.invalid" | $SUDO debconf-set-selections
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start daemons that the tests do not want on their ports
# (or at all: the stock haproxy listens nowhere, but the tests run their own).
for svc in postfix opendkim unbound prometheus prometheus-node-exporter haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
  if [ -x "/etc/init.d/$svc" ]; then $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
done
