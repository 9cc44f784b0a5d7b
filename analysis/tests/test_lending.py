"""Lending tables (/protocols, /positions, /system, /exposure, /vaults): loaders,
metrics against the raw datasets read with h5py, figures and the report.
The scenario (LENDING_YAML) is in conftest.py."""
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from spiral_analysis import Run, decode_category, metrics, plots
from spiral_analysis.report import write_report

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_LOOPERS = 40
QS = metrics.HF_QUANTILES


def raw(path, *names):
    with h5py.File(path, "r") as f:
        return [f[n][()] for n in names]


# -- loaders -----------------------------------------------------------------
def test_positions_columns_and_decoding(lending_run):
    with Run(lending_run) as run:
        pos = run.positions()
        assert list(pos.columns) == ["t", "t_us", "collateral_value", "debt_value", "hf", "layer",
                                     "liquidatable", "owner", "protocol"]
        assert isinstance(pos["protocol"].dtype, pd.CategoricalDtype)
        assert list(pos["protocol"].cat.categories) == ["aave", "maker"] == run.protocol_names()
        assert not pos["protocol"].isna().any()
        assert pos["hf"].dtype == np.float64 and pos["owner"].dtype == np.int32
        assert pos["liquidatable"].dtype == np.int8 and pos["layer"].dtype == np.int8
        # the same rows as the file, decoded through flag_values / flag_meanings
        t, code, hf = raw(lending_run, "positions/t", "positions/protocol", "positions/hf")
        with h5py.File(lending_run, "r") as f:
            fv = f["positions/protocol"].attrs["flag_values"].tolist()
            fm = f["positions/protocol"].attrs["flag_meanings"]
            fm = (fm.decode() if isinstance(fm, bytes) else str(fm)).split()
        assert len(pos) == len(t) > 10 * N_LOOPERS
        np.testing.assert_array_equal(pos["hf"], hf)
        assert pos["protocol"].astype(str).tolist() == [fm[fv.index(c)] for c in code]
        # snapshots every 30 min from t = 0, each one a block of rows
        snaps = np.unique(t)
        np.testing.assert_array_equal(snaps, np.arange(0, 8 * 3600 + 1, 1800.0))
        assert np.all(np.diff(t) >= 0)
        # owners: the 40 loopers and both vaults; aave holds loopers + vault, maker mvault
        pn = run.positions(owner_names=True)
        owners = set(pn["owner_name"].astype(str))
        assert owners == {f"crowd_{k}" for k in range(N_LOOPERS)} | {"vault", "mvault"}
        assert set(pn.loc[pn["protocol"] == "maker", "owner_name"].astype(str)) == {"mvault"}
        # protocol filter and column selection
        mk = run.positions("maker", columns=["hf", "layer"])
        assert list(mk.columns) == ["t", "protocol", "hf", "layer"]
        assert len(mk) == (pos["protocol"] == "maker").sum() == len(snaps)
        assert (mk["layer"] == 1).all()                 # vETH is a layer-1 token
        assert set(pos.loc[pos["protocol"] == "aave", "layer"]) == {0}
        with pytest.raises(KeyError, match="no protocol 'nope'"):
            run.positions("nope")
        with pytest.raises(KeyError, match="no column"):
            run.table("positions", columns=["t", "nope"])


def test_system_protocols_vaults_exposure_tables(lending_run):
    with Run(lending_run) as run:
        sysdf = run.system()
        assert list(sysdf.columns) == ["t", "t_us", "collateral_multiplier", "leverage_layer_0",
                                       "leverage_layer_1", "leverage_layer_2", "total_bad_debt",
                                       "total_collateral", "total_debt"]
        assert len(sysdf) == 8 * 6 + 1
        prots = run.protocols()
        assert set(prots) == {"aave", "maker"}
        aave, maker = prots["aave"], prots["maker"]
        assert aave.attrs["type"] == "pool" and maker.attrs["type"] == "cdp"
        common = {"t", "t_us", "collateral_value", "debt", "bad_debt", "reserve", "n_positions",
                  "n_liquidatable"}
        assert set(aave.columns) == common | {"utilization_USDC", "borrow_rate_USDC",
                                              "exchange_rate_USDC"}
        assert set(maker.columns) == common | {"debt_vETH"}
        # /system is sampled with the protocols: C and D are their sums
        np.testing.assert_array_equal(sysdf["t"], aave["t"])
        np.testing.assert_allclose(sysdf["total_collateral"],
                                   aave["collateral_value"] + maker["collateral_value"], rtol=1e-12)
        np.testing.assert_allclose(sysdf["total_debt"], aave["debt"] + maker["debt"], rtol=1e-12)
        vaults = run.vaults()
        assert set(vaults) == {"vault", "mvault"}
        v = vaults["vault"]
        assert list(v.columns) == ["t", "collateral", "debt", "idle", "leverage", "nav",
                                   "share_price", "shares"]
        assert v.attrs["protocol"] == "aave" and v.attrs["asset"] == "ETH"
        assert v.attrs["target_leverage"] == 3.0
        ex = run.exposure()
        assert list(ex.columns) == ["t", "t_us", "holder", "issuer", "token", "value", "issuer_name"]
        assert isinstance(ex["holder"].dtype, pd.CategoricalDtype)
        assert isinstance(ex["token"].dtype, pd.CategoricalDtype)
        assert len(ex) == len(sysdf)                   # one row per sample: vETH in maker
        assert set(ex["holder"].astype(str)) == {"maker"}
        assert set(ex["token"].astype(str)) == {"vETH"}
        assert set(ex["issuer_name"].astype(str)) == {"vault"}
        np.testing.assert_allclose(ex["value"], maker["collateral_value"], rtol=1e-12)


def test_decode_category_vectorised_matches_lookup():
    rng = np.random.default_rng(1)
    values = np.array([7, 0, 3, 100, 42])
    names = "seven zero three hundred fortytwo"
    codes = rng.choice(np.array([0, 3, 7, 42, 100, 5, -1]), size=200_000).astype(np.int32)
    cat = decode_category(codes, values, names)
    lookup = dict(zip(values.tolist(), names.split()))
    expect = [lookup.get(c) for c in codes.tolist()]
    got = cat.astype(object).tolist()
    assert [g if isinstance(g, str) else None for g in got] == expect
    assert list(cat.categories) == names.split()
    assert len(decode_category(np.zeros(0, np.int8), values, names)) == 0


# -- metrics against the raw datasets ----------------------------------------------
def test_collateral_multiplier_against_columns(lending_run):
    C, D, M, t = raw(lending_run, "system/total_collateral", "system/total_debt",
                     "system/collateral_multiplier", "system/t")
    with Run(lending_run) as run:
        sysdf = run.system()
        ms = metrics.multiplier_series(sysdf)
        summ = run.summary()
    assert (C > 0).all()
    expect = np.where(C <= D, np.inf, C / (C - D))
    np.testing.assert_allclose(ms["recomputed"], expect, rtol=1e-12)
    np.testing.assert_allclose(ms["collateral_multiplier"], M, rtol=0)
    np.testing.assert_allclose(M, expect, rtol=1e-12)
    np.testing.assert_allclose(ms["equity"], C - D, rtol=1e-12)
    assert list(ms.columns) == ["collateral_multiplier", "recomputed", "equity", "leverage_layer_0",
                                "leverage_layer_1", "leverage_layer_2"]
    vmax, tmax = metrics.max_collateral_multiplier(sysdf)
    assert vmax == M.max() == summ["max_collateral_multiplier"]
    assert tmax == t[np.argmax(M)]
    assert vmax > 5                                     # the shock raised leverage
    assert ms["leverage_layer_2"].isna().all()          # no mETH posted anywhere
    # the recursive-loop identity and the conventions
    lam, n = 0.8, 3
    c = sum(lam ** k for k in range(n + 1))
    assert metrics.collateral_multiplier(c, c - 1) == pytest.approx((1 - lam ** (n + 1)) / (1 - lam))
    np.testing.assert_array_equal(
        metrics.collateral_multiplier([10, 10, 5, np.nan, 0], [0, 10, 6, 1, 0]),
        [1.0, np.inf, np.inf, np.nan, 1.0])                # C = 0: nothing posted, 1 as spiral writes


def test_hf_quantiles_against_numpy(lending_run):
    t, code, hf, liq, coll, debt = raw(lending_run, "positions/t", "positions/protocol",
                                       "positions/hf", "positions/liquidatable",
                                       "positions/collateral_value", "positions/debt_value")
    with Run(lending_run) as run:
        pos = run.positions()
        prots = run.protocols()
        summ = run.summary()
    hq = metrics.hf_quantiles(pos)
    np.testing.assert_array_equal(hq.index, np.unique(t))
    assert list(hq.columns) == ["n_positions", "n_debt", "n_liquidatable", "share_liquidatable",
                                "collateral_value", "debt_value", "q05", "q25", "q50", "q75", "q95"]
    for tk, row in hq.iterrows():
        sel = t == tk
        h = hf[sel]
        fin = h[np.isfinite(h)]
        assert row.n_positions == sel.sum() and row.n_debt == fin.size
        assert row.n_liquidatable == liq[sel].sum() == (h < 1).sum()
        assert row.share_liquidatable == pytest.approx(liq[sel].sum() / sel.sum())
        assert row.collateral_value == pytest.approx(coll[sel].sum(), rel=1e-12)
        assert row.debt_value == pytest.approx(debt[sel].sum(), rel=1e-12)
        np.testing.assert_allclose(row[["q05", "q25", "q50", "q75", "q95"]].to_numpy(float),
                                   np.quantile(fin, QS), rtol=1e-12)
    # per protocol: against numpy and against /protocols at the snapshot times
    hp = metrics.hf_quantiles(pos, by_protocol=True)
    assert hp.index.names == ["protocol", "t"]
    with h5py.File(lending_run, "r") as f:
        fv = f["positions/protocol"].attrs["flag_values"].tolist()
    for k, name in enumerate(["aave", "maker"]):
        sub = hp.xs(name, level="protocol")
        mine = code == fv[k]
        for tk, row in sub.iterrows():
            h = hf[mine & (t == tk)]
            np.testing.assert_allclose(row[["q05", "q50", "q95"]].to_numpy(float),
                                       np.quantile(h[np.isfinite(h)], [0.05, 0.5, 0.95]), rtol=1e-12)
        pr = prots[name].set_index("t").loc[sub.index]
        np.testing.assert_array_equal(sub["n_positions"], pr["n_positions"])
        np.testing.assert_array_equal(sub["n_liquidatable"], pr["n_liquidatable"])
        np.testing.assert_allclose(sub["collateral_value"], pr["collateral_value"], rtol=1e-12)
        np.testing.assert_allclose(sub["debt_value"], pr["debt"], rtol=1e-12)
        last = metrics.hf_at(hp, "last").xs(name, level="protocol").iloc[0]
        assert last.n_liquidatable == summ[f"liquidatable_{name}"]
        assert sub["n_liquidatable"].max() == summ[f"max_liquidatable_{name}"]
    # the shock: no aave position liquidatable before 2 h, some after 3 h
    aave = hp.xs("aave", level="protocol")
    assert aave.loc[:7200, "n_liquidatable"].max() == 0
    assert aave.loc[10800:, "share_liquidatable"].min() > 0.1
    assert aave["q50"].iloc[-1] < aave["q50"].iloc[1]
    first = metrics.hf_at(hp, "first")
    assert list(first.index.get_level_values("t")) == [0.0, 0.0]


def test_hf_quantiles_synthetic_and_large():
    pos = pd.DataFrame({"t": [0, 0, 0, 0, 5, 5], "hf": [0.5, 2.0, np.inf, 1.0, np.inf, np.inf],
                        "liquidatable": [1, 0, 0, 0, 0, 0],
                        "collateral_value": [1.0, 2, 3, 4, 5, 6], "debt_value": [2.0, 1, 0, 4, 0, 0],
                        "protocol": pd.Categorical(["a"] * 6)})
    h = metrics.hf_quantiles(pos, quantiles=(0.0, 0.5, 1.0))
    assert list(h.columns[-3:]) == ["q00", "q50", "q100"]
    assert h.loc[0.0, "n_positions"] == 4 and h.loc[0.0, "n_debt"] == 3
    assert h.loc[0.0, "share_liquidatable"] == 0.25
    assert (h.loc[0.0, "q00"], h.loc[0.0, "q50"], h.loc[0.0, "q100"]) == (0.5, 1.0, 2.0)
    assert h.loc[5.0, "n_debt"] == 0 and np.isnan(h.loc[5.0, "q50"])    # no debt: no quantile
    # a million rows: one pass, agrees with pandas' groupby quantile
    rng = np.random.default_rng(0)
    n = 1_000_000
    t = np.repeat(np.arange(200.0), n // 200)
    hf = np.exp(rng.normal(0.3, 0.4, n))
    big = pd.DataFrame({"t": t, "hf": hf, "liquidatable": (hf < 1).astype(np.int8),
                        "collateral_value": np.ones(n), "debt_value": np.ones(n)})
    hb = metrics.hf_quantiles(big)
    ref = big.groupby("t")["hf"].quantile([0.05, 0.5, 0.95]).unstack()
    np.testing.assert_allclose(hb[["q05", "q50", "q95"]].to_numpy(), ref.to_numpy(), rtol=1e-12)


def test_bad_debt_and_share_price(lending_run):
    with Run(lending_run) as run:
        prots, sysdf, vaults, summ = run.protocols(), run.system(), run.vaults(), run.summary()
    bd = metrics.bad_debt_over_time(prots, sysdf)
    assert list(bd.columns) == ["aave", "maker", "total", "system_total"]
    for p in prots:
        assert bd[p].iloc[-1] == summ[f"bad_debt_{p}"]
    np.testing.assert_allclose(bd["total"], bd["system_total"], rtol=1e-12, atol=1e-9)
    assert bd["total"].iloc[-1] == summ["bad_debt_total"]
    # two protocols on different grids: held constant between samples
    a = pd.DataFrame({"t": [0.0, 10, 20], "bad_debt": [0.0, 5, 7]})
    b = pd.DataFrame({"t": [5.0, 25], "bad_debt": [1.0, 3]})
    s = metrics.bad_debt_over_time({"a": a, "b": b})
    np.testing.assert_array_equal(s.index, [0, 5, 10, 20, 25])
    np.testing.assert_array_equal(s["a"], [0, 0, 5, 7, 7])
    np.testing.assert_array_equal(s["b"], [np.nan, 1, 1, 1, 3])
    np.testing.assert_array_equal(s["total"], [0, 1, 6, 8, 10])
    # share price drawdown, against numpy on the file's column
    (sp,) = raw(lending_run, "vaults/vault/share_price")
    dd = metrics.share_price_drawdown(vaults["vault"])
    np.testing.assert_allclose(dd, 1 - sp / np.maximum.accumulate(sp), rtol=1e-12)
    assert metrics.max_share_price_drawdown(vaults["vault"]) == pytest.approx(
        np.max(1 - sp / np.maximum.accumulate(sp)), rel=1e-12)
    assert metrics.max_share_price_drawdown(vaults["vault"]) > 1      # NAV went negative
    assert summ["min_share_price_vault"] <= sp.min() + 1e-12
    assert summ["final_share_price_vault"] == pytest.approx(sp[-1], rel=1e-9)
    ag = metrics.aggregate_extremes(prots["aave"])
    assert ag.loc["n_liquidatable", "end"] == summ["liquidatable_aave"]
    assert ag.loc["debt", "max"] == prots["aave"]["debt"].max()
    assert ag.loc["debt", "t_max"] == prots["aave"]["t"][prots["aave"]["debt"].idxmax()]


# -- figures and report ------------------------------------------------------------
def test_lending_figures(lending_run, amm_run, tmp_path):
    with Run(lending_run) as run:
        for name in ("collateral_multiplier", "hf_distribution", "protocols", "vaults"):
            fig = getattr(plots, name)(run)
            assert fig is not None, name
            p = plots.save(fig, str(tmp_path / f"{name}.png"))
            assert os.path.getsize(p) > 10000
        fig = plots.hf_distribution(run)
        axes = fig.get_axes()
        assert axes[0].get_yscale() == "log"
        assert any(abs(l.get_ydata()[0] - 1.0) < 1e-12 for l in axes[0].get_lines()
                   if len(l.get_ydata()) == 2)           # the HF = 1 line
        assert sum(1 for a in axes if a.get_title().startswith("test_lending: health")) == 2
    with Run(amm_run) as run:                           # no lending tables: nothing drawn
        for name in ("collateral_multiplier", "hf_distribution", "protocols", "vaults"):
            assert getattr(plots, name)(run) is None, name


def test_report_includes_lending(lending_run, tmp_path):
    out = tmp_path / "rep"
    env = dict(os.environ, PYTHONPATH=ANALYSIS, MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-m", "spiral_analysis", "report", lending_run, "-o", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    pngs = {p.name for p in out.glob("*.png")}
    assert {"collateral_multiplier.png", "hf_distribution.png", "protocols.png",
            "vaults.png", "price_paths.png"} <= pngs
    md = (out / "report.md").read_text()
    for h in ("## Lending protocols", "## System leverage", "## Health factors", "## Vaults",
              "## Exposure"):
        assert h in md, h
    imgs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    for f in ("collateral_multiplier.png", "hf_distribution.png", "protocols.png", "vaults.png"):
        assert f in imgs
    assert all((out / i).exists() for i in imgs)
    with Run(lending_run) as run:
        summ = run.summary()
        mx = metrics.max_collateral_multiplier(run.system())[0]
    assert f"max {mx:,.4f}".rstrip("0").rstrip(".") + " at " in md
    assert "| maker | vETH | vault |" in md
    assert re.search(r"\| aave \| last \| 8\.00 h \| 41 \| 41 \| %d \(" % summ["liquidatable_aave"], md)
    html = (out / "report.html").read_text()
    srcs = re.findall(r"<img [^>]*src='([^']*)'", html)
    assert len(srcs) == len(imgs) and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "Health factors" in html


def test_write_report_api_on_amm_has_no_lending(amm_run, tmp_path):
    md, _ = write_report(amm_run, str(tmp_path / "r"))
    text = open(md).read()
    assert "## Lending protocols" not in text and "hf_distribution.png" not in text
