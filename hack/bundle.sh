#!/usr/bin/env bash
# Makes a program carry its own C library: copies it with every shared library
# it loads and the dynamic loader into one directory, and patches it (patchelf)
# to start through that loader and find its libraries there only.
#
#   hack/bundle.sh PROGRAM DIR     DIR/bin/PROGRAM, DIR/lib/*.so*
#
# DIR is absolute and must be where the bundle will live: the program names
# DIR/lib/ld-*.so as its interpreter and DIR/lib as its RPATH. Dockerfile.worker
# uses it to put plateop-worker, built on Debian bookworm (glibc 2.36), into
# the CellProfiler image, whose older base (Ubuntu 18.04, glibc 2.27, for
# CellProfiler 4.2) could not run it. Nothing is set in the environment, so the
# processes it starts (CellProfiler) keep using the image's own libraries.
set -euo pipefail

die() { echo "bundle: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: hack/bundle.sh PROGRAM DIR"
prog=$1 dir=$2
case "$dir" in /*) ;; *) die "DIR must be an absolute path: $dir" ;; esac
[ -x "$prog" ] || die "$prog: not an executable"
command -v patchelf >/dev/null || die "patchelf not found (apt-get install patchelf)"

interp=$(patchelf --print-interpreter "$prog") || die "$prog: not a dynamically linked program"
mkdir -p "$dir/bin" "$dir/lib"
# ldd prints "libx.so.N => /path/libx.so.N (0x...)" for each library, the
# whole closure; cp -L stores the file under its soname.
libs=$(ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
[ -n "$libs" ] || die "$prog: ldd found no shared libraries"
for lib in $libs; do
    cp -L "$lib" "$dir/lib/"
done
cp -L "$interp" "$dir/lib/"
name=$(basename "$prog")
install -m 0755 "$prog" "$dir/bin/$name"
# DT_RPATH (not RUNPATH) so it also applies to the libraries' own dependencies.
patchelf --set-interpreter "$dir/lib/$(basename "$interp")" --force-rpath --set-rpath "$dir/lib" \
    "$dir/bin/$name"
echo "bundle: $dir/bin/$name with $(ls "$dir/lib" | wc -l) libraries in $dir/lib" >&2
