"""Sweep and Stress loaders against what `spiral sweep` / `spiral stress` wrote."""
import math
import os
import subprocess

import h5py
import numpy as np
import pytest

from spiral_analysis.load import IncompleteRunError, Run, SpiralFileError, Stress, Sweep

BASE = """\
name: small
seed: 3
horizon: 2h
tokens:
  - {name: ETH, kind: base}
  - {name: USDC, kind: stable}
references:
  - type: gbm
    asset: ETH
    initial: 2000
    volatility: 60%
    step: 12s
    shocks:
      - {at: 30m, drop: 20%, over: 10m}
markets:
  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 5000,
     reserve_quote: 10000000, fee: 0.3%}
agents:
  - {type: arbitrageur, name: arb, venue: pool, poll: 12s, cash: 1000000, inventory: 100}
"""

SWEEP = """\
base: small.yaml
set: {references.0.volatility: 40%}
axes:
  - {key: markets.pool.fee, values: [0.05%, 0.3%]}
  - {key: agents.arb.poll, values: [12s, 1m]}
replicates: 3
seed_base: 21
"""


@pytest.fixture(scope="module")
def sweep_dir(spiral_exe, tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    (d / "small.yaml").write_text(BASE)
    (d / "fees.yaml").write_text(SWEEP)
    out = d / "out"
    r = subprocess.run([spiral_exe, "sweep", str(d / "fees.yaml"), "-j", "2", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "12 complete" in r.stdout
    return str(out)


def test_sweep_frame_matches_run_files(sweep_dir):
    sw = Sweep(sweep_dir)
    assert len(sw) == 12 and sw.status == "complete"
    assert sw.axes == ["markets.pool.fee", "agents.arb.poll"]
    df = sw.frame
    assert list(df["run"]) == list(range(12))
    assert list(df["arm"]) == [a for a in range(4) for _ in range(3)]
    assert list(df["seed"]) == [21, 22, 23] * 4
    assert (df["status"] == "complete").all() and (df["resumed"] == "no").all()
    # The last axis varies fastest; numeric axes in canonical units (s, fractions).
    assert list(df["markets.pool.fee"])[::3] == [0.0005, 0.0005, 0.003, 0.003]
    assert list(df["agents.arb.poll"])[::3] == [12.0, 60.0, 12.0, 60.0]
    assert "n_trades" in sw.metrics and "max_drawdown_reference_ETH" in sw.metrics
    paths = sw.runs()
    assert [os.path.basename(p) for p in paths[:4]] == ["a000_r0.h5", "a000_r1.h5", "a000_r2.h5",
                                                        "a001_r0.h5"]
    for i, row in df.iterrows():
        with sw.run(i) as run:
            assert run.status == "complete"
            assert run.seed == row["seed"]
            cfg = run.config
            assert cfg["markets"][0]["fee"] in ("0.05%", "0.3%")
            assert cfg["references"][0]["volatility"] == "40%"       # `set:` reached every run
            for m, v in run.summary().items():
                assert df.loc[i, m] == pytest.approx(v, rel=0, abs=0), m
            assert run.attrs["config_hash"] and len(run.attrs["config_hash"]) == 16


def test_sweep_common_random_numbers_across_arms(sweep_dir):
    sw = Sweep(sweep_dir)
    df = sw.frame
    # Replicate k has the same reference path in every arm.
    for k in range(3):
        rows = df.index[df["replicate"] == k]
        prices = []
        for i in rows:
            with sw.run(i) as run:
                prices.append(run.table("markets/reference_ETH")["price"].to_numpy())
        for p in prices[1:]:
            assert np.array_equal(p, prices[0])
    # and the arms differ where the parameters act
    by = sw.by_arm("n_trades")
    assert len(by) == 4 and (by["n"] == 3).all()
    assert by["mean"].nunique() > 1


def test_sweep_summary_path_and_errors(sweep_dir, tmp_path):
    sw = Sweep(os.path.join(sweep_dir, "summary.h5"))
    assert len(sw.complete()) == 12
    assert "markets.pool.fee" in sw.sweep_text
    with pytest.raises(SpiralFileError):
        Sweep(tmp_path)                                   # no summary.h5
    with pytest.raises(SpiralFileError):
        Sweep(sw.runs()[0])                               # a run file, not a summary


def test_sweep_failed_runs_and_string_axes(spiral_exe, tmp_path):
    (tmp_path / "small.yaml").write_text(BASE)
    (tmp_path / "s.yaml").write_text(
        "base: small.yaml\n"
        "axes:\n"
        "  - {key: markets.pool.fee, values: ['0.05%', '0.3%']}\n"     # quoted: a category axis
        "seeds: [5, 6]\n")
    env = dict(os.environ, SPIRAL_TEST_CRASH_ON_SEED="6")
    r = subprocess.run([spiral_exe, "sweep", str(tmp_path / "s.yaml"), "-j", "2", "-o",
                        str(tmp_path / "o"), "-q"], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 1, r.stderr
    sw = Sweep(tmp_path / "o")
    df = sw.frame
    assert list(df["status"]) == ["complete", "failed", "complete", "failed"]
    assert list(df["markets.pool.fee"].astype(str)) == ["'0.05%'", "'0.05%'", "'0.3%'", "'0.3%'"]
    assert math.isnan(df.loc[1, "n_trades"]) and not math.isnan(df.loc[0, "n_trades"])
    with pytest.raises(SpiralFileError):
        sw.run(1)                                         # the crashed worker left no file
    assert sw.attrs["n_failed"] == 2


def test_stress_loader(spiral_exe, tmp_path):
    (tmp_path / "det.yaml").write_text(
        "horizon: 2h\n"
        "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
        "references:\n"
        "  - {type: gbm, asset: ETH, initial: 2000, volatility: 0, step: 1m,\n"
        "     shocks: [{at: 30m, drop: 10%}]}\n")
    out = tmp_path / "st.h5"
    r = subprocess.run([spiral_exe, "stress", str(tmp_path / "det.yaml"),
                        "--param", "references.0.shocks.0.drop", "--range", "0.1:0.8",
                        "--metric", "max_drawdown_reference_ETH", "--threshold", "0.5",
                        "--seeds", "2", "--tol", "0.005", "-j", "2", "-o", str(out), "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    st = Stress(out)
    assert st.result == "found" and st.param == "references.0.shocks.0.drop"
    assert abs(st.critical_value - 0.5) <= 0.005
    lo, hi = st.bracket
    assert lo <= 0.5 <= hi and hi - lo <= 0.005
    c = st.curve
    assert (np.diff(c["param"]) > 0).all()
    assert np.allclose(c["mean"], c["param"])
    assert set(c["phase"].astype(str)) == {"grid", "bisection"}
    assert list(c["exceeds"].astype(str)) == ["yes" if p > 0.5 else "no" for p in c["param"]]
    ev = st.evaluations
    assert len(ev) == 2 * len(c) and (ev["status"] == "complete").all()
    for path, v in zip(st.runs(), ev["value"]):
        with Run(path) as run:
            assert run.summary()["max_drawdown_reference_ETH"] == v


def test_sweep_zip_axes_vary_together(spiral_exe, tmp_path):
    (tmp_path / "small.yaml").write_text(BASE)
    (tmp_path / "z.yaml").write_text(
        "base: small.yaml\n"
        "axes:\n"
        "  - {key: markets.pool.fee, values: [0.05%, 0.3%]}\n"
        "  - zip:\n"
        "      - {key: references.0.shocks.0.drop, values: [10%, 30%, 50%]}\n"
        "      - {key: references.0.shocks.0.over, values: [0s, 10m, 1h]}\n"
        "seeds: [9]\n"
        "output: zout\n")                                    # relative to the sweep file
    r = subprocess.run([spiral_exe, "sweep", str(tmp_path / "z.yaml"), "-j", "2", "-q"],
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    sw = Sweep(tmp_path / "zout")
    df = sw.frame
    assert len(df) == 6 and list(df["seed"]) == [9] * 6
    assert list(df["references.0.shocks.0.drop"]) == [0.1, 0.3, 0.5] * 2
    assert list(df["references.0.shocks.0.over"]) == [0.0, 600.0, 3600.0] * 2
    assert list(df["markets.pool.fee"]) == [0.0005] * 3 + [0.003] * 3
    assert sw.attrs["n_arms"] == 6
    with h5py.File(sw.path, "r") as f:
        assert f["axes"].attrs["n_dimensions"] == 2
