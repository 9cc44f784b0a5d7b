"""Metrics against values computed by hand on small synthetic series."""
import math

import numpy as np
import pandas as pd
import pytest

from spiral_analysis import metrics


def test_max_drawdown_by_hand():
    # peaks 100, 120 (t=1), ... trough 60 after peak 120: 1 - 60/120 = 0.5;
    # the later 130 is a new peak and does not undo it
    assert metrics.max_drawdown([100, 120, 90, 110, 60, 130]) == pytest.approx(0.5)
    np.testing.assert_allclose(metrics.drawdown([100, 120, 90, 110, 60, 130]),
                               [0, 0, 0.25, 1 - 110 / 120, 0.5, 0])
    assert metrics.max_drawdown([1, 2, 3, 4]) == 0.0
    assert metrics.max_drawdown([100, 80]) == pytest.approx(0.2)
    # NaN samples (an empty book side) are skipped, not treated as zero
    assert metrics.max_drawdown([100, np.nan, 50, np.nan]) == pytest.approx(0.5)
    assert math.isnan(metrics.max_drawdown([]))
    assert math.isnan(metrics.max_drawdown([np.nan, np.nan]))
    assert metrics.max_drawdown(pd.Series([10.0, 5.0, 7.5])) == pytest.approx(0.5)


def test_asof_piecewise_constant():
    t, v = [0, 10, 20], [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(metrics.asof([-1, 0, 5, 10, 19.9, 25], t, v),
                                  [np.nan, 1, 1, 2, 2, 3])


def test_time_under_water_same_grid():
    t = [0, 10, 20, 30]
    venue = [100, 94, 97, 100]
    # reference 100 throughout (one sample at 0, held)
    uw = metrics.time_under_water(t, venue, [0], [100], 0.05)
    assert uw.total == 10 and uw.longest == 10 and uw.episodes == [(10, 20)]
    assert uw.fraction == pytest.approx(10 / 30)
    uw = metrics.time_under_water(t, venue, [0], [100], 0.02)      # 94 and 97 both > 2 %
    assert uw.total == 20 and uw.episodes == [(10, 30)]
    # exactly at the threshold is not "more than": 95 vs 100 at 5 %
    assert metrics.time_under_water([0, 10], [95, 95], [0], [100], 0.05, t_end=20).total == 0


def test_time_under_water_different_grids_and_t_end():
    # reference 100 on [0,15), 94 from 15: venue 94 on [10,20) is 6 % away on
    # [10,15) only; venue 97 on [20,30) is 3.2 % above 94 (< 5 %); with
    # t_end = 40, venue 100 on [30,40) is 6.4 % above 94.
    t, venue = [0, 10, 20, 30], [100, 94, 97, 100]
    uw = metrics.time_under_water(t, venue, [0, 15], [100, 94], 0.05)
    assert uw.total == 5 and uw.episodes == [(10, 15)]
    uw = metrics.time_under_water(t, venue, [0, 15], [100, 94], 0.05, t_end=40)
    assert uw.total == 15 and uw.longest == 10 and uw.episodes == [(10, 15), (30, 40)]
    assert uw.fraction == pytest.approx(15 / 40)
    # before the reference's first sample nothing is observed
    uw = metrics.time_under_water([0, 10], [50, 50], [5], [100], 0.1, t_end=20)
    assert uw.total == 15 and uw.fraction == 1.0
    # NaN venue prices are unknown, not under water
    uw = metrics.time_under_water([0, 10, 20], [50, np.nan, 50], [0], [100], 0.1, t_end=30)
    assert uw.total == 20 and uw.episodes == [(0, 10), (20, 30)] and uw.fraction == 1.0


def _oracle():
    # published at 0, 60, 120 (latency 10 s): consumers get them at 10, 70, 130
    return pd.DataFrame({"t": [0.0, 60.0, 120.0], "price": [100.0, 100.0, 90.0],
                         "source_price": [100.0, 95.0, 90.0],
                         "delivered_t": [10.0, 70.0, 130.0]})


def test_oracle_delivered_and_age():
    o = _oracle()
    price, upd = metrics.oracle_delivered(o, [0, 9.9, 10, 65, 70, 129, 130])
    np.testing.assert_array_equal(price, [np.nan, np.nan, 100, 100, 100, 100, 90])
    np.testing.assert_array_equal(upd, [np.nan, np.nan, 0, 0, 60, 60, 120])
    cmp = metrics.oracle_vs_source(o, [10, 65, 70, 100, 130], [100, 95, 96, 80, 90])
    np.testing.assert_allclose(cmp["deviation"], [0, 100 / 95 - 1, 100 / 96 - 1, 0.25, 0])
    np.testing.assert_allclose(cmp["age"], [10, 65, 10, 40, 10])
    assert list(cmp.columns) == ["t", "delivered", "source", "deviation", "age"]


def test_oracle_publication_stats():
    st = metrics.oracle_publication_stats(_oracle())
    assert st == {"n_updates": 3, "latency": 10.0, "max_gap": 60.0,
                  "max_abs_offset": pytest.approx(100 / 95 - 1)}
    empty = metrics.oracle_publication_stats(_oracle().iloc[:0])
    assert empty["n_updates"] == 0 and math.isnan(empty["latency"])


def _trades(decoded=True):
    cause = ["arbitrage", "arbitrage", "liquidation", "noise"]
    side = ["buy", "sell", "sell", "buy"]
    df = pd.DataFrame({
        "t": [0.0, 30.0, 61.0, 125.0],
        "venue": ["pool"] * 3 + ["book"],
        # buy: quote in, base out; sell: base in, quote out
        "amount_in": [2000.0, 1.5, 10.0, 500.0],
        "amount_out": [1.0, 2900.0, 18000.0, 0.25],
    })
    if decoded:
        df["cause"] = pd.Categorical(cause, categories=["arbitrage", "liquidation", "loop", "noise"])
        df["side"] = pd.Categorical(side, categories=["buy", "sell"])
    else:
        df["cause"] = cause
        df["side"] = np.array([0, 1, 1, 0], dtype=np.int8)
    return df


def test_volume_by_cause():
    for decoded in (True, False):
        tr = _trades(decoded)
        np.testing.assert_array_equal(metrics.quote_volume(tr), [2000, 2900, 18000, 500])
        v = metrics.volume_by_cause(tr)
        assert list(v.index) == ["liquidation", "arbitrage", "noise"]      # by quote volume
        assert v.loc["arbitrage"].tolist() == [2, 4900.0, 2.5]
        assert v.loc["liquidation"].tolist() == [1, 18000.0, 10.0]
        assert v.loc["noise"].tolist() == [1, 500.0, 0.25]
    full = metrics.volume_by_cause(_trades(), drop_empty=False)
    assert "loop" in full.index and full.loc["loop", "n_trades"] == 0
    byv = metrics.volume_by_cause(_trades(), by=("venue", "cause"))
    assert byv.loc[("pool", "arbitrage"), "quote_volume"] == 4900.0
    assert byv["n_trades"].sum() == 4


def test_trades_over_time():
    tr = _trades()
    n = metrics.trades_over_time(tr, 60, t_end=180)
    assert list(n.index) == [0.0, 60.0, 120.0]
    assert n.loc[0.0, "arbitrage"] == 2 and n.loc[60.0, "liquidation"] == 1 and n.loc[120.0, "noise"] == 1
    assert n.to_numpy().sum() == 4
    q = metrics.trades_over_time(tr, 60, value="quote_volume", t_end=180)
    assert q.loc[0.0, "arbitrage"] == 4900.0 and q.loc[60.0, "liquidation"] == 18000.0
