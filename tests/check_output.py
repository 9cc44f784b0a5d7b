"""Open a spiral run the way users will: h5py, pandas and xarray (h5netcdf).

Usage: /usr/bin/python3 tests/check_output.py RUN.h5
Exits non-zero with a message on the first problem.  Called by ctest
(output_readable) on a freshly produced quickstart run.
"""
import os
import re
import sys

import h5py
import numpy as np
import pandas as pd
import xarray as xr


def documented_tables(doc_path):
    """Parse docs/output.md: [(heading path, [column names])]; one path may
    have several layouts (/markets/<name> for AMMs and for books)."""
    tables, current, in_columns = [], None, False
    for line in open(doc_path, encoding="utf-8"):
        m = re.match(r"^### `(/[^`]+)`", line)
        if m:
            current = []
            tables.append((m.group(1), current))
            continue
        if line.startswith("## "):
            current = None
        if line.startswith("| "):
            # Only "| column | ..." tables list columns ("| attribute |" ones
            # list /summary metrics).
            if not line.startswith("| `"):
                in_columns = line.startswith("| column ")
            elif not in_columns:
                continue
        m = re.match(r"^\| `([a-z_0-9<>]+)`(?: \.\. `([A-Za-z_0-9]+)`)? \|", line)
        if current is not None and m:
            # "`bid_price_1` .. `bid_price_N`": a numbered family of columns;
            # "`utilization_<tok>`": one column per token.
            name = re.sub(r"<[a-z_]+>", "[A-Za-z0-9_.-]+", m.group(1))
            if m.group(2):
                name = re.sub(r"_[01]$", "_[0-9]+", name)
            current.append(name)
    return tables


def check_documented(path, doc_path):
    """Every table in the file matches a documented table, column for column."""
    tables = documented_tables(doc_path)
    patterns = [(re.compile("^" + re.sub(r"<[a-z_]+>", "[A-Za-z0-9_.-]+", k) + "$"), v)
                for k, v in tables]
    seen = 0
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            nonlocal seen
            if not isinstance(obj, h5py.Group) or not any(
                    isinstance(obj[c], h5py.Dataset) for c in obj):
                return
            cols = sorted(c for c in obj if isinstance(obj[c], h5py.Dataset))
            candidates = [v for p, v in patterns if p.match("/" + name)]
            if not candidates:
                raise AssertionError(f"table /{name} is not documented in {doc_path}")

            def fits(doc_cols):
                """Every column documented, every documented column present."""
                pats = [re.compile("^" + d + "$") for d in doc_cols]
                return (all(any(p.match(c) for p in pats) for c in cols)
                        and all(any(p.match(c) for c in cols) for p in pats))
            # Several layouts share a path pattern (/markets/<name>): one must fit.
            assert any(fits(v) for v in candidates), (name, cols, candidates)
            seen += 1
        f.visititems(visit)
    assert seen >= 2, seen


def check_documented_only(paths):
    """For runs of other experiments: every table documented."""
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "output.md")
    for p in paths:
        check_documented(p, doc)
        print(f"ok: every table of {p} is documented")


def main(path):
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        for key in ("software", "seed", "scenario", "status", "created_utc", "command_line"):
            assert key in attrs, f"root attribute {key!r} missing"
        assert attrs["status"] == "complete", attrs["status"]
        config = f["config.yaml"][()]
        config = config.decode() if isinstance(config, bytes) else config
        assert "horizon:" in config and "references:" in config, config[:200]
        g = f["markets/reference_ETH"]
        n = {len(g[c]) for c in g}
        assert len(n) == 1, f"columns of unequal length: {n}"
        for c in g:
            assert "units" in g[c].attrs and "long_name" in g[c].attrs, f"{c}: units/long_name"
        assert g["t"].attrs.get("CLASS") == b"DIMENSION_SCALE", "t is not a dimension scale"
        frame = pd.DataFrame({c: g[c][()] for c in g})
        assert (np.diff(frame["t"]) > 0).all(), "t not increasing"
        assert (frame["price"] > 0).all()
        ent = f["entities"]
        meanings = ent["name"].attrs["flag_meanings"]
        meanings = meanings.decode() if isinstance(meanings, bytes) else meanings
        assert "reference_ETH" in meanings.split(), meanings
        summary = dict(f["summary"].attrs)
        assert "max_drawdown_reference_ETH" in summary, summary

    ds = xr.open_dataset(path, engine="h5netcdf", group="markets/reference_ETH")
    assert "price" in ds and ds["price"].dims == ("t",), ds
    assert ds["price"].attrs["units"], ds["price"].attrs
    assert ds.sizes["t"] == len(frame)
    ds.close()
    ent = xr.open_dataset(path, engine="h5netcdf", group="entities")
    assert ent.sizes["id"] >= 1
    ent.close()
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "output.md")
    check_documented(path, doc)
    print(f"ok: {path} opens in h5py, pandas ({len(frame)} rows) and xarray/h5netcdf")


if __name__ == "__main__":
    main(sys.argv[1])
    check_documented_only(sys.argv[2:])
