"""Liquidation metrics, `compare` and `fragility` against independent numpy
computations on a small auction-vs-fixed-spread sweep made here with the binary.

The sweep (2 shock sizes x 2 mechanisms x 3 seeds = 12 runs of a 3-hour,
20-vault version of experiments/auction_vs_amm.yaml; ~2 s on 2 cores) has a
reference that records every update, so the liquidation losses against it
are exact.
"""
import csv
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from spiral_analysis import metrics
from spiral_analysis.__main__ import main as cli_main
from spiral_analysis.load import Run, Stress, Sweep

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Student t 0.975 quantiles (independent of metrics.t_quantile): solved with
# mpmath at 40 digits; df 1 is tan(0.475 pi), df 2 is 0.95 * sqrt(2 / 0.0975).
# (scipy.stats.t.ppf is off by up to ~4e-10 relative here, e.g. 4.302652729911
# for df 2.)
T975 = {1: 12.706204736174705, 2: 4.3026527297494639, 3: 3.1824463052837096,
        4: 2.7764451051977944, 5: 2.5705818356363155, 9: 2.2621571627982055,
        29: 2.0452296421327043}

AVA = """\
name: ava_small
seed: 3
horizon: 3h
output:
  sample_every: 5m
tokens:
  - {name: ETH, kind: base}
  - {name: DAI, kind: stable}
references:
  - type: gbm
    asset: ETH
    initial: 2000
    volatility: 60%
    step: 12s
    record_every_update: true
    shocks:
      - {at: 30m, drop: 45%, over: 1h}
markets:
  - {type: cpmm, name: pool, base: ETH, quote: DAI, reserve_base: 10000,
     reserve_quote: 20000000, fee: 0.3%}
oracles:
  - {type: chainlink, name: eth_pool, source: {type: spot, of: pool}, poll: 12s,
     deviation: 0.5%, heartbeat: 1h}
protocols:
  - type: cdp
    name: maker
    stablecoin: DAI
    positions_every: 30m
    liquidation:
      mechanism: dutch_auction
      kick: protocol
      close_factor: 50%
      protocol_fee: 0
      curve: stairstep_exponential
      step: 90s
      cut: 0.99
      buf: 1.2
      tail: 140m
      cusp: 40%
      tip: 0
      chip: 0.1%
      beg: 1.03
      ttl: 30m
      tau: 6h
      venue: pool
    collaterals:
      - {token: ETH, oracle: eth_pool, liquidation_ratio: 1.5, liquidation_penalty: 13%,
         stability_fee: 0}
agents:
  - {type: arbitrageur, name: arbs, count: 3, venue: pool, poll: 12s, reaction: 12s,
     gas_cost: 10, min_profit: 10, inventory: {dist: lognormal, mean: 1500, sd: 400},
     cash: {dist: lognormal, mean: 3000000, sd: 800000}}
  - {type: looper, name: vaults, count: 20, protocol: maker, collateral: ETH, debt: DAI,
     venue: pool, capital: {dist: lognormal, mean: 6, sd: 8},
     target_leverage: {dist: uniform, low: 1.8, high: 2.9}, safety: 99%, max_slippage: 3%,
     start: 1m, start_spread: 20m, hf_low: 0, inattentive: 100%}
  - {type: keeper, name: keepers, count: 3, protocols: maker, capital: 400000,
     latency: {dist: uniform, low: 5, high: 60}, margin: {dist: uniform, low: 0.03, high: 0.08},
     min_profit: 30, bidding: jump, poll: 30s}
"""

SWEEP = """\
base: ava.yaml
axes:
  - {key: references.0.shocks.0.drop, values: [30%, 45%]}
  - {key: protocols.maker.liquidation.mechanism, values: [fixed_spread, dutch_auction]}
replicates: 3
seed_base: 1
"""

MECH = "protocols.maker.liquidation.mechanism"
DROP = "references.0.shocks.0.drop"


@pytest.fixture(scope="module")
def ava_sweep(spiral_exe, tmp_path_factory):
    d = tmp_path_factory.mktemp("ava")
    (d / "ava.yaml").write_text(AVA)
    (d / "sw.yaml").write_text(SWEEP)
    r = subprocess.run([spiral_exe, "sweep", str(d / "sw.yaml"), "-j", "2", "-o", str(d / "out"),
                        "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return str(d / "out")


def _raw(path):
    """Every column of the liquidation-related tables, straight from h5py."""
    out = {}
    with h5py.File(path, "r") as f:
        for g in ("events/liquidations", "events/trades", "events/auctions",
                  "markets/reference_ETH", "markets/pool"):
            out[g] = {k: f[g][k][()] for k in f[g]}
            out[g + ":names"] = {k: f[g][k].attrs["flag_meanings"].split()
                                 for k in f[g] if "flag_meanings" in f[g][k].attrs}
            out[g + ":codes"] = {k: list(f[g][k].attrs["flag_values"])
                                 for k in f[g] if "flag_values" in f[g][k].attrs}
        out["summary"] = dict(f["summary"].attrs)
    return out


def _code(raw, group, col, name):
    return raw[group + ":codes"][col][raw[group + ":names"][col].index(name)]


def _run_path(sweep_dir, drop, mech, rep):
    sw = Sweep(sweep_dir)
    df = sw.frame
    i = df.index[(df[DROP] == drop) & (df[MECH].astype(str) == mech) & (df["replicate"] == rep)][0]
    return sw.runs()[i]


# -- metrics on runs with liquidations ----------------------------------------
def test_t_quantile_and_intervals():
    assert T975[1] == pytest.approx(math.tan(0.475 * math.pi), rel=1e-15)
    assert T975[2] == pytest.approx(0.95 * math.sqrt(2 / 0.0975), rel=1e-15)
    for df, q in T975.items():
        assert metrics.t_quantile(0.975, df) == pytest.approx(q, rel=1e-12)
    assert metrics.t_quantile(0.025, 2) == pytest.approx(-T975[2], rel=1e-12)
    assert metrics.t_quantile(0.5, 7) == 0.0 and math.isnan(metrics.t_quantile(0.975, 0))
    x = np.array([1.0, 2.0, 6.0])
    ci = metrics.mean_ci(x)
    half = T975[2] * np.std(x, ddof=1) / math.sqrt(3)
    assert (ci.mean, ci.n) == (3.0, 3)
    assert ci.lo == pytest.approx(3 - half, rel=1e-11) and ci.hi == pytest.approx(3 + half, rel=1e-11)
    one = metrics.mean_ci([5.0, np.nan])
    assert one.mean == 5.0 and one.n == 1 and math.isnan(one.lo)
    d = metrics.paired_ci([2.0, 3.0, 7.0, np.nan], [1.0, 1.0, 1.0, 1.0])
    dd = np.array([1.0, 2.0, 6.0])
    assert d.n == 3 and d.mean == pytest.approx(3.0)
    assert d.hi - d.mean == pytest.approx(T975[2] * dd.std(ddof=1) / math.sqrt(3), rel=1e-11)


def test_liquidation_metrics_fixed_spread(ava_sweep):
    path = _run_path(ava_sweep, 0.45, "fixed_spread", 0)
    raw = _raw(path)
    L = raw["events/liquidations"]
    s = raw["summary"]
    assert L["t"].size > 5, "the scenario must liquidate"
    with Run(path) as run:
        liq = run.table("events/liquidations")
        # bad debt: total and per protocol, from the events, = the summary
        assert metrics.bad_debt_total(liq) == pytest.approx(float(L["bad_debt"].sum()), rel=1e-12)
        assert metrics.bad_debt_total(liq) == pytest.approx(s["bad_debt_total"], rel=1e-9, abs=1e-6)
        bp = metrics.bad_debt_by_protocol(liq, protocols=["maker"])
        assert bp["maker"] == pytest.approx(s["bad_debt_maker"], rel=1e-9, abs=1e-6)
        # liquidated value = sum seized x oracle price; by mechanism
        v = float(np.sum(L["collateral_seized"] * L["oracle_price"]))
        assert metrics.liquidated_value(liq) == pytest.approx(v, rel=1e-12)
        code = _code(raw, "events/liquidations", "mechanism", "fixed_spread")
        byv = metrics.liquidated_value(liq, by="mechanism")
        assert list(byv.index) == ["fixed_spread"]
        sel = L["mechanism"] == code
        assert byv["fixed_spread"] == pytest.approx(
            float(np.sum(L["collateral_seized"][sel] * L["oracle_price"][sel])), rel=1e-12)
        # cascade depth and liquidations by generation
        g = L["generation"]
        assert metrics.cascade_depth(liq) == int(g.max()) == int(s["cascade_depth"])
        bg = metrics.liquidations_by_generation(liq)
        counts = np.bincount(g)
        assert list(bg.index) == [int(x) for x in np.flatnonzero(counts)]
        assert list(bg["n"]) == [int(c) for c in counts[counts > 0]]
        for gen in bg.index:
            m = g == gen
            assert bg.loc[gen, "value"] == pytest.approx(
                float(np.sum(L["collateral_seized"][m] * L["oracle_price"][m])), rel=1e-12)
            assert bg.loc[gen, "t_first"] == L["t"][m].min()
        assert g.max() > 0, "fixed spread through the pool's own oracle should cascade"
        ot = metrics.liquidations_over_time(liq, 600, value="n", t_end=run.t_end)
        assert ot.to_numpy().sum() == g.size and len(ot) == 18
        ex = ~np.isnan(L["exec_price"])
        assert metrics.execution_discount(liq) == pytest.approx(
            1 - np.sum(L["collateral_seized"][ex] * L["exec_price"][ex])
            / np.sum(L["collateral_seized"][ex] * L["oracle_price"][ex]), rel=1e-12)
        # liquidation losses: sum over liquidation sales of ref(t) x amount - proceeds
        T = raw["events/trades"]
        R = raw["markets/reference_ETH"]
        lc = _code(raw, "events/trades", "cause", "liquidation")
        sell = _code(raw, "events/trades", "side", "sell")
        m = T["cause"] == lc
        assert m.sum() > 0 and np.all(T["side"][m] == sell)
        ref = R["price"][np.searchsorted(R["t"], T["t"][m], side="right") - 1]
        want = float(np.sum(ref * T["amount_in"][m] - T["amount_out"][m]))
        refs = metrics.run_references_by_venue(run)
        assert set(refs) == {"pool"}
        assert metrics.liquidation_losses(run.trades(), refs) == pytest.approx(want, rel=1e-10)
        lt = metrics.liquidation_trade_losses(run.trades(), refs["pool"])
        assert len(lt) == m.sum() and np.allclose(lt["reference_price"], ref, rtol=0, atol=0)
        # keepers
        lp = metrics.liquidator_profit(run.summary())
        assert lp == {"keepers": s["profit_keepers"], "total": s["profit_keepers"]}
        # drawdowns: the reference records every update, so samples = summary
        dd = metrics.price_drawdowns(run)
        assert dd.loc["reference_ETH", "max_drawdown"] == pytest.approx(
            s["max_drawdown_reference_ETH"], rel=1e-12)
        assert dd.loc["pool", "max_drawdown"] <= s["max_drawdown_pool"] + 1e-12
        assert dd.loc["eth_pool", "kind"] == "oracle"
        uw = metrics.under_water_table(run)
        assert set(uw["series"]) == {"pool", "eth_pool"} and (uw["total"] >= 0).all()
        rm = metrics.run_metrics(run)
        assert rm["liquidation_losses"] == pytest.approx(want, rel=1e-10)
        assert math.isnan(rm["auction_raised_over_tab"])       # no auction with fixed spread


def test_auction_and_bad_debt_metrics_dutch(ava_sweep):
    path = _run_path(ava_sweep, 0.45, "dutch_auction", 1)
    raw = _raw(path)
    A = raw["events/auctions"]
    s = raw["summary"]
    with Run(path) as run:
        au = run.table("events/auctions")
        st = metrics.auction_stats(au)
        assert st["n"] == A["t_start"].size > 0
        assert st["n_zero_bid"] == int(A["zero_bid"].sum())
        assert st["zero_bid_share"] == pytest.approx(s["zero_bid_share"], rel=1e-12, abs=0)
        assert st["raised_over_tab"] == pytest.approx(A["raised"].sum() / A["tab"].sum(), rel=1e-12)
        assert st["duration_mean"] == pytest.approx(np.mean(A["t_end"] - A["t_start"]), rel=1e-12)
        assert st["recovery"] == pytest.approx(A["raised"].sum() / A["collateral_value"].sum())
        liq = run.table("events/liquidations")
        L = raw["events/liquidations"]
        assert metrics.bad_debt_total(liq) == pytest.approx(s["bad_debt_total"], rel=1e-9, abs=1e-6)
        ev = metrics.bad_debt_events_over_time(liq)
        pos = L["bad_debt"] > 0
        assert len(ev) == pos.sum()
        if pos.any():
            assert ev["total"].iloc[-1] == pytest.approx(L["bad_debt"].sum(), rel=1e-12)
            # the sampled /protocols bad debt ends at the same total
            prot = run.protocols()["maker"]
            assert prot["bad_debt"].iloc[-1] == pytest.approx(ev["maker"].iloc[-1], rel=1e-9)
        # amplification: from the summary when present, else paired ratios
        assert metrics.amplification({"amplification": 1.25}) == 1.25
        assert metrics.amplification(s) is None or np.isfinite(metrics.amplification(s))
        np.testing.assert_allclose(metrics.paired_amplification([0.5, 0.4, 0.3], [0.25, 0.4, 0]),
                                   [2.0, 1.0, np.nan])


def test_report_has_liquidation_sections(ava_sweep, tmp_path):
    from spiral_analysis.report import write_report
    md, _ = write_report(_run_path(ava_sweep, 0.45, "dutch_auction", 1), str(tmp_path / "r"))
    text = open(md).read()
    for sec in ("## Liquidations", "## Auctions", "## Liquidators", "## Drawdowns",
                "## Liquidation sales against the reference"):
        assert sec in text, sec
    pngs = {p.name for p in (tmp_path / "r").glob("*.png")}
    assert {"liquidations_price.png", "liquidations_by_generation.png", "auctions.png"} <= pngs
    assert "blocks.png" not in pngs                      # instant chain: no /events/blocks
    with Run(_run_path(ava_sweep, 0.45, "dutch_auction", 1)) as run:
        assert ("bad_debt.png" in pngs) == (run.summary()["bad_debt_total"] > 0)


# -- compare -----------------------------------------------------------------
def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_cli_cis_match_independent(ava_sweep, tmp_path):
    out = tmp_path / "cmp"
    env = dict(os.environ, PYTHONPATH=ANALYSIS, MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-m", "spiral_analysis", "compare", ava_sweep, "-o", str(out),
                        "--metrics", "bad_debt_total,liquidation_losses,max_drawdown_pool"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    names = ["compare.md", "compare.csv", "compare.png", "compare_diff.png", "compare.html"]
    assert r.stdout.split() == [str(out / n) for n in names]
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "compare.png").stat().st_size > 20000
    html = (out / "compare.html").read_text()
    assert html.count("src='data:image/png;base64,") == 2 and "<table>" in html
    rows = _read_csv(out / "compare.csv")
    assert len(rows) == 4 * 3

    # independent: metrics from summary.h5 with h5py, losses from the run files with h5py
    with h5py.File(os.path.join(ava_sweep, "summary.h5"), "r") as f:
        runs = {k: f["runs"][k][()] for k in ("arm", "seed", "status", "bad_debt_total",
                                               "max_drawdown_pool", DROP, MECH)}
        mech_names = f["runs"][MECH].attrs["flag_meanings"].split()
        mech_codes = list(f["runs"][MECH].attrs["flag_values"])
        files = [x for x in f["run_files"][()].decode().split("\n") if x]
    losses = []
    for fn in files:
        raw = _raw(os.path.join(ava_sweep, "runs", fn))
        T, R = raw["events/trades"], raw["markets/reference_ETH"]
        m = T["cause"] == _code(raw, "events/trades", "cause", "liquidation")
        ref = R["price"][np.searchsorted(R["t"], T["t"][m], side="right") - 1]
        losses.append(float(np.sum(ref * T["amount_in"][m] - T["amount_out"][m])))
    values = {"bad_debt_total": runs["bad_debt_total"], "max_drawdown_pool": runs["max_drawdown_pool"],
              "liquidation_losses": np.array(losses)}
    mech = np.array([mech_names[mech_codes.index(c)] for c in runs[MECH]])

    def ci(x):
        n = len(x)
        h = T975[n - 1] * np.std(x, ddof=1) / math.sqrt(n)
        return np.mean(x), np.mean(x) - h, np.mean(x) + h

    checked = 0
    for row in rows:
        drop, mname, metric = float(row[DROP]), row[MECH], row["metric"]
        sel = (runs[DROP] == drop) & (mech == mname)
        x = values[metric][sel]
        assert int(row["n"]) == 3 == len(x)
        mean, lo, hi = ci(x)
        assert float(row["mean"]) == pytest.approx(mean, rel=1e-12, abs=1e-9)
        assert float(row["ci_lo"]) == pytest.approx(lo, rel=1e-9, abs=1e-9)
        assert float(row["ci_hi"]) == pytest.approx(hi, rel=1e-9, abs=1e-9)
        assert row["baseline"] == "fixed_spread"
        if mname == "fixed_spread":
            assert row["is_baseline"] == "True" and row["pairing"] == ""
            continue
        # paired by seed against fixed_spread at the same drop
        bsel = (runs[DROP] == drop) & (mech == "fixed_spread")
        sa, sb = runs["seed"][sel], runs["seed"][bsel]
        assert list(sa) == list(sb)                       # common random numbers
        d = x - values[metric][bsel]
        dm, dlo, dhi = ci(d)
        assert row["pairing"] == "paired" and int(row["n_pairs"]) == 3
        assert float(row["diff"]) == pytest.approx(dm, rel=1e-12, abs=1e-9)
        assert float(row["diff_lo"]) == pytest.approx(dlo, rel=1e-9, abs=1e-9)
        assert float(row["diff_hi"]) == pytest.approx(dhi, rel=1e-9, abs=1e-9)
        checked += 1
    assert checked == 6
    md = (out / "compare.md").read_text()
    assert "## liquidation_losses" in md and "paired (3 seeds)" in md and "![" in md


def test_compare_api_defaults_and_one_axis(ava_sweep, spiral_exe, tmp_path):
    from spiral_analysis.compare import compare, compare_figure, write_compare
    cmp = compare(ava_sweep)                              # defaults: by = the category axis
    assert cmp.by == MECH and cmp.others == [DROP] and cmp.baseline == "fixed_spread"
    assert {"bad_debt_total", "liquidation_losses", "max_drawdown_pool", "cascade_depth",
            "liquidator_profit"} <= set(cmp.metrics)
    assert not any(m.startswith("max_drawdown_reference") for m in cmp.metrics)
    # --by the shock axis, baseline 0.45: paired differences of the other drop
    cmp2 = compare(ava_sweep, by=DROP, metrics=["n_liquidations"], baseline="0.45")
    t = cmp2.table
    assert set(t.loc[t["is_baseline"], DROP]) == {0.45}
    assert (t.loc[~t["is_baseline"], "pairing"] == "paired").all()
    fig = compare_figure(cmp2)
    assert len([a for a in fig.axes if a.get_visible()]) == 1
    paths = write_compare(ava_sweep, str(tmp_path / "c"), metrics=["max_drawdown_*"])
    assert all(os.path.exists(p) for p in paths)
    assert {r["metric"] for r in _read_csv(paths[1])} == {"max_drawdown_pool",
                                                          "max_drawdown_reference_ETH"}
    # one axis: bars with error bars; the arms differ only by mechanism
    (tmp_path / "ava.yaml").write_text(AVA)
    (tmp_path / "one.yaml").write_text(
        "base: ava.yaml\nset: {horizon: 2h}\n"
        f"axes:\n  - {{key: {MECH}, values: [fixed_spread, amm_direct]}}\nseeds: [7, 8]\n")
    r = subprocess.run([spiral_exe, "sweep", str(tmp_path / "one.yaml"), "-j", "2", "-o",
                        str(tmp_path / "one"), "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cmp3 = compare(str(tmp_path / "one"), metrics=["liquidated_value", "liquidation_losses"])
    assert cmp3.by == MECH and cmp3.others == []
    t = cmp3.table
    assert list(t["n"]) == [2] * 4
    row = t[(t[MECH] == "amm_direct") & (t["metric"] == "liquidated_value")].iloc[0]
    df = Sweep(str(tmp_path / "one")).frame
    a = df.loc[df[MECH].astype(str) == "amm_direct", "liquidated_value"].to_numpy()
    b = df.loc[df[MECH].astype(str) == "fixed_spread", "liquidated_value"].to_numpy()
    h = T975[1] * np.std(a - b, ddof=1) / math.sqrt(2)
    assert row["diff"] == pytest.approx(np.mean(a - b)) and row["diff_hi"] == pytest.approx(np.mean(a - b) + h)
    fig = compare_figure(cmp3)
    ax = fig.axes[0]
    assert len(ax.patches) == 2                           # one bar per arm
    assert len(compare_figure(cmp3, diff=True).axes[0].patches) == 1   # amm_direct - fixed_spread


def test_compare_and_fragility_bad_input(ava_sweep, tmp_path, capsys):
    assert cli_main(["compare", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert cli_main(["compare", str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err
    run_file = Sweep(ava_sweep).runs()[0]
    assert cli_main(["compare", run_file]) == 2
    assert "not a spiral sweep file" in capsys.readouterr().err
    assert cli_main(["compare", ava_sweep, "--by", "markets.pool.fee", "-o", str(tmp_path / "x")]) == 2
    assert "not an axis" in capsys.readouterr().err
    assert cli_main(["compare", ava_sweep, "--metrics", "bogus", "-o", str(tmp_path / "x")]) == 2
    assert "unknown metric 'bogus'" in capsys.readouterr().err
    assert cli_main(["compare", ava_sweep, "--baseline", "english", "-o", str(tmp_path / "x")]) == 2
    assert "not a value of" in capsys.readouterr().err
    assert cli_main(["fragility", str(tmp_path / "nope.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli_main(["fragility", os.path.join(ava_sweep, "summary.h5")]) == 2
    assert "not a spiral stress file" in capsys.readouterr().err
    assert cli_main(["fragility", run_file]) == 2
    assert not os.path.exists(tmp_path / "x")


# -- fragility -----------------------------------------------------------------
def test_fragility(spiral_exe, tmp_path, capsys):
    (tmp_path / "det.yaml").write_text(
        "horizon: 2h\n"
        "tokens: [{name: ETH, kind: base}, {name: USDC, kind: stable}]\n"
        "references:\n"
        "  - {type: gbm, asset: ETH, initial: 2000, volatility: 20%, step: 1m,\n"
        "     shocks: [{at: 30m, drop: 10%}]}\n")
    out = tmp_path / "st.h5"
    r = subprocess.run([spiral_exe, "stress", str(tmp_path / "det.yaml"),
                        "--param", "references.0.shocks.0.drop", "--range", "0.1:0.8",
                        "--metric", "max_drawdown_reference_ETH", "--threshold", "0.5",
                        "--seeds", "2", "--grid", "4", "--tol", "0.05", "-j", "2", "-o", str(out),
                        "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert cli_main(["fragility", str(out)]) == 0
    paths = capsys.readouterr().out.split()
    d = tmp_path / "st_fragility"
    assert paths == [str(d / n) for n in ("fragility.md", "fragility.csv", "fragility.png",
                                          "fragility.html")]
    assert (d / "fragility.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    st = Stress(out)
    md = (d / "fragility.md").read_text()
    assert f"Result: {st.result}" in md and "critical" in md.lower()
    assert len(_read_csv(d / "fragility.csv")) == len(st.curve)
    from spiral_analysis.compare import fragility_figure
    fig = fragility_figure(st)
    ax = fig.axes[0]
    # the per-seed points: every evaluation's value is drawn
    pts = [l for l in ax.get_lines() if l.get_label().startswith("per seed")][0]
    assert len(pts.get_xdata()) == int(np.isfinite(st.evaluations["value"]).sum())
    if np.isfinite(st.critical_value):
        assert any(l.get_label().startswith("critical value") for l in ax.get_lines())


def test_common_random_numbers_across_mechanism_arms(ava_sweep):
    """Arms that differ only in the liquidation mechanism, same replicate:
    identical reference price paths, and identical agent draws — every trade
    before the first liquidation (the loopers' sizes and start times, the
    arbitrageurs' inventories and timing) is the same row for row.  Different
    replicates see different paths."""
    for drop in (0.3, 0.45):
        paths = []
        for rep in range(3):
            a = _raw(_run_path(ava_sweep, drop, "fixed_spread", rep))
            b = _raw(_run_path(ava_sweep, drop, "dutch_auction", rep))
            ra, rb = a["markets/reference_ETH"], b["markets/reference_ETH"]
            assert np.array_equal(ra["t"], rb["t"]) and np.array_equal(ra["price"], rb["price"])
            t_liq = min([x["events/liquidations"]["t"].min() for x in (a, b)
                         if len(x["events/liquidations"]["t"])] or [np.inf])
            ta, tb = a["events/trades"], b["events/trades"]
            ma, mb = ta["t"] < t_liq, tb["t"] < t_liq
            assert ma.sum() > 20 and ma.sum() == mb.sum()
            for col in ("t", "agent", "cause", "side", "amount_in", "amount_out"):
                assert np.array_equal(ta[col][ma], tb[col][mb]), col
            paths.append(ra["price"])
        assert not np.array_equal(paths[0], paths[1])
