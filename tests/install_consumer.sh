#!/bin/sh
# ctest install_consumer: `cmake --install` into a scratch prefix, then build
# and run a downstream project with find_package(spiral), and compile the
# same program with pkg-config.  Usage: install_consumer.sh BUILD_DIR SRC_DIR WORK_DIR
set -eu
build=$1 src=$2 work=$3/install-consumer
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/spiral/sim.h"
test -f "$work/prefix/include/spiral/version.h"
cmake -S "$src/tests/consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"
"$work/build/consumer"
libdir=$(ls -d "$work"/prefix/lib*/pkgconfig | head -1)
PKG_CONFIG_PATH="$libdir" pkg-config --exists spiral
cc -o "$work/consumer-pc" "$src/tests/consumer/main.c" \
    $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags spiral) \
    $(PKG_CONFIG_PATH="$libdir" pkg-config --libs --static spiral)
"$work/consumer-pc"
echo "install_consumer: ok"
