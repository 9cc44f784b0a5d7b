"""Checkpointed runs in the analysis package: `continued(parent, child, group)`
stitches a resumed file to its parent, and equals the uninterrupted run; a
branch carries its lineage (parent_snapshot, resumed_at, overrides)."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import AMM_YAML, run_scenario
from spiral_analysis import Run, SpiralFileError, continued


def test_continued_equals_the_uninterrupted_run(spiral_exe, tmp_path):
    full = run_scenario(spiral_exe, str(tmp_path), "test_amm", AMM_YAML, "--checkpoint-at",
                        "1h30m")
    snap = os.path.join(str(tmp_path), "test_amm.ckpt", "test_amm@1h30m.snap")
    assert os.path.exists(snap)
    rest = os.path.join(str(tmp_path), "rest.h5")
    r = subprocess.run([spiral_exe, "resume", snap, "-o", rest, "-q"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with Run(full) as a, Run(rest) as b:
        assert not b.is_branch and b.overrides == []
        assert b.parent_snapshot == snap
        assert 5300 < b.resumed_at <= 5400
        for group in ("markets/pool", "events/trades", "oracles/feed"):
            whole = a.table(group)
            stitched = continued(a, b, group)
            assert len(stitched) == len(whole) > 10
            pd.testing.assert_frame_equal(stitched, whole, check_exact=True,
                                          check_categorical=False)
        assert b.summary() == a.summary()
        # the parent found from the snapshot's recorded output
        assert b.attrs["parent_output"] == full
        pd.testing.assert_frame_equal(continued(b, "markets/pool"), a.table("markets/pool"),
                                      check_exact=True, check_categorical=False)
        # a file that is not the parent is refused
        other = run_scenario(spiral_exe, str(tmp_path), "other", AMM_YAML, "--seed", "99",
                             "--until", "1h")
        with pytest.raises(SpiralFileError, match="not the output of the run"):
            continued(other, b, "markets/pool")


def test_branch_records_its_lineage_and_differs_only_after(spiral_exe, tmp_path):
    full = run_scenario(spiral_exe, str(tmp_path), "test_amm", AMM_YAML, "--checkpoint-at", "1h")
    snap = os.path.join(str(tmp_path), "test_amm.ckpt", "test_amm@1h.snap")
    br = os.path.join(str(tmp_path), "branch.h5")
    r = subprocess.run([spiral_exe, "resume", snap, "-o", br, "-q",
                        "--set", "markets.pool.fee=1%"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    with Run(full) as a, Run(br) as b:
        assert b.is_branch and b.overrides == ["markets.pool.fee=1%"]
        whole = a.table("markets/pool")
        what_if = continued(a, b, "markets/pool")
        t0 = what_if.attrs["branch_t"]
        before = whole["t"] <= t0
        np.testing.assert_array_equal(what_if["price"][: before.sum()], whole["price"][before])
        assert (what_if["t"][before.sum():] > t0).all()
        # a tenfold fee changes the trading after the branch point
        assert not np.array_equal(what_if["price"][before.sum():].to_numpy(),
                                  whole["price"][~before].to_numpy())


def test_branches_figure(spiral_exe, tmp_path):
    full = run_scenario(spiral_exe, str(tmp_path), "test_amm", AMM_YAML, "--checkpoint-at", "1h")
    snap = os.path.join(str(tmp_path), "test_amm.ckpt", "test_amm@1h.snap")
    br = os.path.join(str(tmp_path), "branch.h5")
    assert subprocess.run([spiral_exe, "resume", snap, "-o", br, "-q", "--set",
                           "markets.pool.fee=1%"], timeout=60).returncode == 0
    out = os.path.join(str(tmp_path), "fig.png")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-m", "spiral_analysis", "branches", full, br,
                        "--table", "markets/pool", "--column", "price", "-o", out],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == out and os.path.getsize(out) > 10000
    r = subprocess.run([sys.executable, "-m", "spiral_analysis", "branches", full, br,
                        "--table", "markets/pool", "--column", "nope"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "no column 'nope'" in r.stderr
