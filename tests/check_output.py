"""Open a spiral run the way users will: h5py, pandas and xarray (h5netcdf).

Usage: /usr/bin/python3 tests/check_output.py RUN.h5
Exits non-zero with a message on the first problem.  Called by ctest
(output_readable) on a freshly produced quickstart run.
"""
import sys

import h5py
import numpy as np
import pandas as pd
import xarray as xr


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
    print(f"ok: {path} opens in h5py, pandas ({len(frame)} rows) and xarray/h5netcdf")


if __name__ == "__main__":
    main(sys.argv[1])
