#!/bin/sh
# Installs the Debian packages listed in deps/debian-packages.txt.
#   scripts/install-deps.sh              install (apt-get update first)
#   scripts/install-deps.sh --if-missing do nothing when every package is installed
#   scripts/install-deps.sh --deploy [--if-missing]
#                                        the container tools of deps/deploy-packages.txt
#                                        instead (make test-deploy); no npm packages
set -eu
cd "$(dirname "$0")/.."
list=deps/debian-packages.txt
if_missing=0
for arg in "$@"; do
    case $arg in
        --if-missing) if_missing=1 ;;
        --deploy) list=deps/deploy-packages.txt ;;
        *) echo "install-deps: unknown option $arg" >&2; exit 2 ;;
    esac
done
pkgs=$(grep -v '^[[:space:]]*#' "$list" | grep -v '^[[:space:]]*$' | tr '\n' ' ')

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

# Node (tests, web assets): Debian's nodejs and npm when the machine has no node.
if [ "$list" = deps/debian-packages.txt ] && ! command -v node >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

npm_install() { # the npm packages of package.json, from the lock file
    if [ "$list" = deps/debian-packages.txt ] && [ -f package.json ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; }; then
        echo "install-deps: npm packages"
        npm ci --no-audit --no-fund --loglevel=error && touch node_modules
    fi
}

if [ "$if_missing" = 1 ] && [ -z "$missing" ]; then
    npm_install
    exit 0
fi
[ -n "$missing" ] || missing="$pkgs"

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
npm_install
