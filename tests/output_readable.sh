#!/bin/sh
# ctest output_readable: run the quickstart, then check the file with
# h5dump -H and with Python (h5py, pandas, xarray/h5netcdf).
# Usage: output_readable.sh SPIRAL_EXE SOURCE_DIR WORK_DIR
set -eu
exe=$1 src=$2 work=$3
out="$work/output_readable.h5"
rm -f "$out"
"$exe" run "$src/experiments/quickstart.yaml" -o "$out" --quiet
h5dump -H "$out" > "$work/output_readable.h5dump"
echo "h5dump -H: ok"
if [ ! -x /usr/bin/python3 ]; then
    echo "SKIPPED: /usr/bin/python3 is absent, the Python readability check did not run"
    exit 77
fi
# Every experiment's tables must be documented in docs/output.md too
# (experiments/*.sweep.yaml are `spiral sweep` files: skipped).
others=""
for e in "$src"/experiments/*.yaml; do
    name=$(basename "$e" .yaml)
    [ "$name" = quickstart ] && continue
    case "$name" in *.sweep) continue ;; esac   # sweep files, not scenarios
    "$exe" run "$e" -o "$work/output_readable_$name.h5" --quiet
    others="$others $work/output_readable_$name.h5"
done
/usr/bin/python3 "$src/tests/check_output.py" "$out" $others
