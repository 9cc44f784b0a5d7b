"""Loaders against real runs of the spiral binary (scenarios in conftest.py)."""
import os
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pandas as pd
import pytest

from spiral_analysis import IncompleteRunError, Run, SpiralFileError, decode_category, metrics

CAUSES = ["arbitrage", "liquidation", "loop", "deleverage", "noise", "redemption",
          "scripted", "external", "market_making", "value", "momentum", "liquidity"]


def test_root_attributes_and_config(amm_run):
    with Run(amm_run) as run:
        assert run.status == "complete"
        assert run.seed == 11                       # --seed overrides the file's 3
        assert run.name == "test_amm"
        assert run.scenario.endswith("test_amm.yaml")
        assert run.software.startswith("spiral ")
        assert run.horizon == run.t_end == 6 * 3600
        cfg = run.config
        assert isinstance(cfg, dict), "python3-yaml is installed: config should be parsed"
        assert cfg["name"] == "test_amm" and cfg["seed"] == 11
        assert [m["name"] for m in cfg["markets"]] == ["pool"]
        assert "name: test_amm" in run.config_text


def test_markets_shapes_and_kinds(amm_run):
    with Run(amm_run) as run:
        m = run.markets()
        assert set(m) == {"pool", "reference_ETH"}
        ref, pool = m["reference_ETH"], m["pool"]
        assert ref.attrs["kind"] == "reference" and ref.attrs["asset"] == "ETH"
        assert pool.attrs["kind"] == "amm" and pool.attrs["type"] == "cpmm"
        assert list(ref.columns) == ["t", "t_us", "price", "shock_factor"]
        assert list(pool.columns)[0] == "t"
        assert set(pool.columns) == {"t", "t_us", "price", "reserve_0", "reserve_1", "lp_supply"}
        # record_every_update: one row per 12 s GBM step, 0 .. 6 h
        assert len(ref) == 6 * 3600 // 12 + 1
        np.testing.assert_array_equal(ref["t_us"].to_numpy(), (ref["t"] * 1e6).round().astype(np.int64))
        # record_every_trade: the 1-minute grid (361 rows) plus one row per trade
        n_trades = len(run.trades())
        assert len(pool) == 361 + n_trades
        assert np.all(np.diff(pool["t"]) >= 0)
        np.testing.assert_allclose(pool["price"], pool["reserve_1"] / pool["reserve_0"], rtol=1e-12)
        assert run.reference_for("pool") == "reference_ETH"
        assert set(run.venues()) == {"pool"} and set(run.references()) == {"reference_ETH"}


def test_trades_decoded(amm_run):
    with Run(amm_run) as run:
        tr = run.trades()
        ent = run.entities()
        assert len(tr) == run.summary()["n_trades"] > 0
        for c in ("venue", "agent", "cause", "side"):
            assert isinstance(tr[c].dtype, pd.CategoricalDtype), c
            assert not tr[c].isna().any(), c
        assert list(tr["cause"].cat.categories) == CAUSES
        assert list(tr["side"].cat.categories) == ["buy", "sell"]
        assert list(tr["venue"].cat.categories) == list(ent["name"].astype(str))
        assert set(tr["venue"].astype(str)) == {"pool"}
        assert set(tr["cause"].astype(str)) == {"arbitrage"}
        assert set(tr["agent"].astype(str)) <= {"fast_0", "fast_1", "slow_0", "slow_1"}
        # codes stay available, and decode agrees with the CF attributes
        raw = run.table("events/trades", decode=False)
        assert raw["venue"].dtype == np.int32 and raw["cause"].dtype == np.int8
        names = ent["name"].astype(str).tolist()
        assert [names[c] for c in raw["agent"]] == tr["agent"].astype(str).tolist()
        # generation 0: no liquidation cascades in this scenario
        assert (tr["generation"] == 0).all()
        buy = tr["side"] == "buy"
        np.testing.assert_array_equal(tr["quote_volume"][buy], tr["amount_in"][buy])
        np.testing.assert_array_equal(tr["quote_volume"][~buy], tr["amount_out"][~buy])


def test_entities_and_agents(amm_run):
    with Run(amm_run) as run:
        ent = run.entities()
        assert ent["id"].tolist() == list(range(len(ent)))
        assert ent["name"].astype(str).tolist()[:4] == ["reference_ETH", "pool", "feed", "osm"]
        assert ent.set_index(ent["name"].astype(str)).loc["pool", "type"] == "cpmm"
        lp = run.agents()["lp"]
        assert lp["action"].astype(str).iloc[0] == "enter"
        assert set(lp["action"].cat.categories) == {"enter", "exit", "return"}


def test_oracles(amm_run):
    with Run(amm_run) as run:
        o = run.oracles()
        s = run.summary()
        assert set(o) == {"feed", "osm"}
        for name, df in o.items():
            assert list(df.columns) == ["t", "t_us", "delivered_t", "price", "source_price"]
            assert len(df) == s[f"n_updates_{name}"]
            assert run.oracle_source_market(name) == "pool"
            np.testing.assert_allclose(df["delivered_t"] - df["t"], df.attrs["latency"])
        assert o["osm"].attrs["type"] == "osm" and o["feed"].attrs["type"] == "chainlink"
        # Chainlink publishes what it reads (no failure offsets here)
        np.testing.assert_allclose(o["feed"]["price"], o["feed"]["source_price"])
        # the sampled deviation never exceeds the per-poll summary by more than
        # what one sampling interval can move the pool; it sees the OSM's lag
        pool = run.markets()["pool"]
        dev = metrics.oracle_vs_source(o["osm"], pool["t"], pool["price"])["deviation"].abs().max()
        assert 0.5 * s["max_deviation_osm"] <= dev <= s["max_deviation_osm"] * 1.05 + 1e-9


def test_summary_matches_metrics(amm_run):
    with Run(amm_run) as run:
        s = run.summary()
        assert isinstance(s["n_trades"], int)
        m = run.markets()
        # every update of the reference is recorded: the drawdown is the summary's
        assert metrics.max_drawdown(m["reference_ETH"]["price"]) == pytest.approx(
            s["max_drawdown_reference_ETH"], rel=1e-12)
        assert m["reference_ETH"]["price"].min() == pytest.approx(s["min_price_reference_ETH"], rel=1e-12)
        # every trade of the pool is recorded (no liquidity change moves its price)
        assert metrics.max_drawdown(m["pool"]["price"]) == pytest.approx(s["max_drawdown_pool"], rel=1e-9)
        vb = metrics.volume_by_cause(run.trades())
        assert vb["n_trades"].sum() == s["n_trades"]
        assert vb["quote_volume"].sum() == pytest.approx(s["volume_pool"], rel=1e-12)
        # the crash takes 30 % off the reference; the pool lags it by > 1 % for a while
        ref, pool = m["reference_ETH"], m["pool"]
        uw = metrics.time_under_water(pool["t"], pool["price"], ref["t"], ref["price"], 0.01)
        assert uw.total > 0 and uw.longest <= uw.total <= run.t_end


def test_xarray_dataset(amm_run):
    with Run(amm_run) as run:
        ds = run.dataset("markets/reference_ETH")
        assert list(ds.dims) == ["t"] and ds.dims["t"] == len(run.table("markets/reference_ETH"))
        assert ds["price"].attrs["units"] == "numeraire"
        tr = run.dataset("events/trades")
        assert tr.dims["t"] == len(run.trades())
        assert tr["cause"].dtype == np.int8 and "flag_meanings" in tr["cause"].attrs
        dec = run.dataset("events/trades", decode=True)
        assert set(dec["cause"].values.tolist()) == {"arbitrage"}
        assert run.dataset("entities").dims["id"] == len(run.entities())


def test_lob_run(lob_run):
    with Run(lob_run) as run:
        m = run.markets()
        assert set(m) == {"abm", "fundamental"}           # depth tables are separate
        assert m["abm"].attrs["kind"] == "lob"
        depth = run.markets(kinds=("depth",))
        assert set(depth) == {"abm_depth"}
        assert {f"bid_price_{k}" for k in (1, 2, 3)} <= set(depth["abm_depth"].columns)
        assert len(m["abm"]) == 31 and len(m["fundamental"]) == 31    # 30 min at 1 min
        tr = run.trades()
        s = run.summary()
        assert len(tr) == s["n_fills_abm"] == s["n_trades"] > 0
        assert set(tr["cause"].astype(str)) <= {"noise", "value", "momentum", "market_making"}
        assert set(tr["venue"].astype(str)) == {"abm"}
        names = set(run.entities()["name"].astype(str))
        assert set(tr["agent"].astype(str)) <= names
        assert run.reference_for("abm") == "fundamental"


def test_decode_category_gaps_and_unknown_codes():
    cat = decode_category(np.array([5, 1, 7, 3], dtype=np.int8), np.array([1, 5, 7]), "one five seven")
    assert list(cat.categories) == ["one", "five", "seven"]
    assert cat.astype(object).tolist()[:3] == ["five", "one", "seven"]
    assert pd.isna(cat[3])                                       # unknown code -> NaN
    with pytest.raises(ValueError):
        decode_category([0], [0, 1], "only_one")


def test_refuses_incomplete(amm_run, tmp_path):
    p = str(tmp_path / "copy.h5")
    shutil.copy(amm_run, p)
    with h5py.File(p, "r+") as f:
        f.attrs["status"] = "failed"
    with pytest.raises(IncompleteRunError, match="'failed'"):
        Run(p)
    with Run(p, allow_incomplete=True) as run:
        assert run.status == "failed" and len(run.trades()) > 0


def test_really_interrupted_run(spiral_exe, tmp_path):
    """SIGINT a paced run: the file says "interrupted" and is refused."""
    from conftest import AMM_YAML
    scen, out = tmp_path / "amm.yaml", tmp_path / "int.h5"
    scen.write_text(AMM_YAML)
    proc = subprocess.Popen([spiral_exe, "run", str(scen), "-o", str(out), "--pace", "3600", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    if proc.returncode != 130:
        pytest.skip(f"run ended before the signal (exit {proc.returncode})")
    with pytest.raises(IncompleteRunError, match="interrupted"):
        Run(str(out))
    with Run(str(out), allow_incomplete=True) as run:
        assert run.status == "interrupted"
        assert 0 < run.t_end < run.horizon
        assert run.markets()["pool"]["t"].max() <= run.t_end


def test_refuses_non_spiral_files(tmp_path):
    with pytest.raises(SpiralFileError, match="no such file"):
        Run(str(tmp_path / "missing.h5"))
    txt = tmp_path / "notes.h5"
    txt.write_text("not hdf5\n")
    with pytest.raises(SpiralFileError, match="not a readable HDF5"):
        Run(str(txt))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
        f.attrs["status"] = "complete"
    with pytest.raises(SpiralFileError, match="not a spiral run"):
        Run(str(other))
    with pytest.raises(SpiralFileError, match="directory"):
        Run(str(tmp_path))
    assert not issubclass(SpiralFileError, IncompleteRunError)
    assert os.path.exists(other)
