#!/bin/sh
# make-base-image.sh - a Debian 12 base image for the Containerfiles when no
# image registry is within reach: debootstrap --variant=minbase from the
# Debian mirror apt already uses, imported into podman.
#
#   scripts/make-base-image.sh [IMAGE]      (default localhost/debian:bookworm)
#
# Nothing is done when IMAGE exists already. The mirror is MIRROR when set,
# else the first Debian mirror of /etc/apt/sources.list.d/*.sources or
# /etc/apt/sources.list, so the image gets its packages from where this
# machine gets them (and the image's apt uses that mirror too). A site with a
# registry uses debian:12 instead (the Containerfiles' BASE build argument).
# Needs root (debootstrap), debootstrap and podman; takes about 2 minutes.
set -eu
image=${1:-localhost/debian:bookworm}
suite=bookworm
PODMAN=${PODMAN:-podman}

if "$PODMAN" image exists "$image" 2>/dev/null; then
    echo "make-base-image: $image exists"
    exit 0
fi
die() { echo "make-base-image: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "no debootstrap (scripts/install-deps.sh --deploy)"

# The first URI of a deb822 stanza or one-line entry whose suite is $suite:
# the security archive has its own suite name, so it is never picked.
mirror_of_apt() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v suite="$suite" '
            /^[[:space:]]*$/ { if (uri != "" && ok) print uri; uri = ""; ok = 0; next }
            /^URIs:/   { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
            END        { if (uri != "" && ok) print uri }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v suite="$suite" '$1 == "deb" {
            i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) print $i }' "$f"
    done
}
mirror=${MIRROR:-$(mirror_of_apt | head -n 1)}
[ -n "$mirror" ] || die "no $suite mirror in apt's sources; set MIRROR"

work=$(mktemp -d /var/tmp/tessera-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "make-base-image: debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
# What an image does not need: downloaded packages, package lists (every
# build stage runs apt-get update), logs of the bootstrap.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
       "$work/rootfs/var/log/"*.log "$work/rootfs/debootstrap"
tar -C "$work/rootfs" --numeric-owner -c . |
    "$PODMAN" import -q --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "make-base-image: $image from $mirror"
