#!/bin/sh
# fetch-web-vendor.sh - the web UI's browser libraries (served under
# /vendor/: OpenSeadragon for the slide viewer, swagger-ui-dist for /docs)
# without node or npm: the tarballs of exactly the versions package-lock.json
# pins, from the npm registry, each checked against the lock's sha512
# integrity before it is unpacked.
#
#   scripts/fetch-web-vendor.sh LOCKFILE DEST [PACKAGE...]
#        (default packages: openseadragon swagger-ui-dist) -> DEST/PACKAGE/...
#
# Used by the Containerfile's web stage; needs curl, jq, base64, od, sha512sum.
# NPM_REGISTRY changes the registry (default https://registry.npmjs.org).
set -eu
[ $# -ge 2 ] || { echo "usage: fetch-web-vendor.sh LOCKFILE DEST [PACKAGE...]" >&2; exit 2; }
lock=$1 dest=$2
shift 2
[ $# -gt 0 ] || set -- openseadragon swagger-ui-dist
registry=${NPM_REGISTRY:-https://registry.npmjs.org}
die() { echo "fetch-web-vendor: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"
for pkg in "$@"; do
    version=$(jq -r --arg k "node_modules/$pkg" '.packages[$k].version // empty' "$lock")
    integrity=$(jq -r --arg k "node_modules/$pkg" '.packages[$k].integrity // empty' "$lock")
    [ -n "$version" ] || die "$pkg is not in $lock"
    case $integrity in
        sha512-*) ;;
        *) die "$pkg: no sha512 integrity in $lock" ;;
    esac
    # Registry tarballs are named after the package without its scope.
    url="$registry/$pkg/-/${pkg##*/}-$version.tgz"
    curl -fsSL --retry 3 -o "$tmp/pkg.tgz" "$url" || die "could not download $url"
    want=$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
    got=$(sha512sum "$tmp/pkg.tgz" | cut -d' ' -f1)
    [ "$want" = "$got" ] || die "$pkg $version: checksum differs from $lock"
    rm -rf "${dest:?}/$pkg"
    mkdir -p "$dest/$pkg"
    tar -xzf "$tmp/pkg.tgz" -C "$dest/$pkg" --strip-components=1 --no-same-owner
    echo "fetch-web-vendor: $pkg $version"
done
