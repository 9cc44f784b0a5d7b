"""Small, documented metrics over spiral tables (plain numpy/pandas inputs).

Conventions: times are simulated seconds (float); sampled series (markets,
references) are treated as **piecewise constant**: a sample holds until the
next one, as the documented prices are (DESIGN §3, docs/output.md).  NaN
prices (an order book with an empty side) are skipped, never counted as 0.
"""
from collections import namedtuple

import numpy as np
import pandas as pd

__all__ = ["drawdown", "max_drawdown", "asof", "UnderWater", "time_under_water",
           "oracle_delivered", "oracle_vs_source", "oracle_publication_stats",
           "volume_by_cause", "trades_over_time", "quote_volume"]


# -- drawdown --------------------------------------------------------------
def drawdown(price):
    """Drawdown at every sample: ``1 - price / running peak`` (0 at a new peak).

    NaN samples stay NaN and do not move the peak.  Returns a float ndarray.
    """
    p = np.asarray(price, dtype=float)
    peak = np.fmax.accumulate(np.where(np.isnan(p), -np.inf, p)) if p.size else p
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = 1.0 - p / peak
    return np.where(np.isnan(p), np.nan, dd)


def max_drawdown(price):
    """Largest fall from a running peak, ``max_i (1 - p_i / max_{j<=i} p_j)``.

    The same definition as the run's ``/summary`` ``max_drawdown_<name>``,
    which is taken over every update; over samples it can only be smaller or
    equal.  Example: [100, 120, 90, 110, 60, 130] -> 1 - 60/120 = 0.5.
    Returns 0.0 for a monotone rise, NaN for an empty or all-NaN series.
    """
    dd = drawdown(price)
    if dd.size == 0 or np.all(np.isnan(dd)):
        return float("nan")
    return float(np.nanmax(dd))


# -- alignment ---------------------------------------------------------------
def asof(t_query, t, values):
    """Value of a piecewise-constant series at ``t_query``: the last sample at
    or before each query time (a sample at t is visible at t); NaN before the
    first sample.  ``t`` must be non-decreasing."""
    t = np.asarray(t, dtype=float)
    v = np.asarray(values, dtype=float)
    q = np.asarray(t_query, dtype=float)
    i = np.searchsorted(t, q, side="right") - 1
    out = np.full(q.shape, np.nan)
    ok = i >= 0
    out[ok] = v[i[ok]]
    return out


# -- time under water --------------------------------------------------------
UnderWater = namedtuple("UnderWater", "total longest fraction episodes")
UnderWater.__doc__ = """Result of time_under_water.

total     seconds the venue was more than the threshold away from the reference
longest   seconds of the longest contiguous such episode
fraction  total / observed time (both series defined, neither NaN)
episodes  list of (start, end) intervals in seconds"""


def time_under_water(t, price, ref_t, ref_price, threshold, t_end=None):
    """How long a venue's price stays more than ``threshold`` (a fraction:
    0.05 = 5 %) away from its reference: ``|price / ref - 1| > threshold``.

    Both series are piecewise constant from each sample to the next, so the
    comparison is exact on the union of their sample times; the last
    interval runs to ``t_end`` (default: the later of the two last sample
    times, i.e. the last samples contribute nothing).  Intervals where either
    price is unknown (before its first sample, or NaN) count neither as under
    water nor as observed.

    Example: venue samples (t=0,10,20,30) = (100, 94, 97, 100), reference
    100 throughout, threshold 5 % -> under water on [10, 20) only: total 10 s.
    """
    t = np.asarray(t, dtype=float)
    rt = np.asarray(ref_t, dtype=float)
    if t.size == 0 or rt.size == 0:
        return UnderWater(0.0, 0.0, float("nan"), [])
    grid = np.union1d(t, rt)
    end = max(t[-1], rt[-1]) if t_end is None else float(t_end)
    grid = grid[grid < end]
    if grid.size == 0:
        return UnderWater(0.0, 0.0, float("nan"), [])
    bounds = np.append(grid, end)
    dt = np.diff(bounds)
    p = asof(grid, t, price)
    r = asof(grid, rt, ref_price)
    known = ~(np.isnan(p) | np.isnan(r)) & (r != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # |p - r| > x·|r| rather than |p/r - 1| > x: no rounding at the boundary
        away = known & (np.abs(p - r) > threshold * np.abs(r))
    episodes, start = [], None
    for k in range(grid.size):
        if away[k] and start is None:
            start = bounds[k]
        if not away[k] and start is not None:
            episodes.append((float(start), float(bounds[k])))
            start = None
    if start is not None:
        episodes.append((float(start), float(end)))
    total = float(dt[away].sum())
    observed = float(dt[known].sum())
    longest = max((b - a for a, b in episodes), default=0.0)
    return UnderWater(total, float(longest),
                      total / observed if observed > 0 else float("nan"), episodes)


# -- oracles ---------------------------------------------------------------
def oracle_delivered(oracle, t_query):
    """What consumers of an oracle see at ``t_query``: the ``price`` of the
    latest publication with ``delivered_t <= t`` (NaN before the first
    delivery), and its publication time ``t`` (Chainlink's updatedAt).

    ``oracle`` is a ``/oracles/<name>`` table (columns t, price, delivered_t).
    Returns (price ndarray, updated_at ndarray).
    """
    d = np.asarray(oracle["delivered_t"], dtype=float)
    order = np.argsort(d, kind="stable")
    d = d[order]
    price = asof(t_query, d, np.asarray(oracle["price"], dtype=float)[order])
    upd = asof(t_query, d, np.asarray(oracle["t"], dtype=float)[order])
    return price, upd


def oracle_vs_source(oracle, src_t, src_price):
    """Delivered oracle price against its source, at the source's sample times.

    Returns a DataFrame with columns ``t``, ``delivered`` (price consumers
    see), ``source`` (the source sample), ``deviation`` = delivered/source - 1
    and ``age`` = t - publication time of the delivered price (the staleness
    a Chainlink consumer can compute from updatedAt; for an OSM the value is
    one hop older still).  Rows before the first delivery have NaN.

    ``max(abs(deviation))`` approximates the run's ``max_deviation_<name>``
    (which is measured at every poll, before the poll's publication, against
    the source read then); sampling at the market grid can miss or shift a
    peak by up to one sampling interval.
    """
    src_t = np.asarray(src_t, dtype=float)
    src = np.asarray(src_price, dtype=float)
    delivered, upd = oracle_delivered(oracle, src_t)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = delivered / src - 1.0
    return pd.DataFrame({"t": src_t, "delivered": delivered, "source": src,
                         "deviation": dev, "age": src_t - upd})


def oracle_publication_stats(oracle):
    """Per-oracle numbers from its publications alone: a dict with

    n_updates        rows (publications)
    latency          mean of delivered_t - t (s)
    max_gap          longest time between publications (s; freezes, heartbeats)
    max_abs_offset   max |price / source_price - 1| at publication: 0 for a
                     Chainlink/heartbeat feed without failure offsets; the
                     one-hop delay for an OSM (its price is the previous read)
    """
    t = np.asarray(oracle["t"], dtype=float)
    if t.size == 0:
        return {"n_updates": 0, "latency": float("nan"), "max_gap": float("nan"),
                "max_abs_offset": float("nan")}
    with np.errstate(invalid="ignore", divide="ignore"):
        off = np.asarray(oracle["price"], float) / np.asarray(oracle["source_price"], float) - 1
    return {"n_updates": int(t.size),
            "latency": float(np.mean(np.asarray(oracle["delivered_t"], float) - t)),
            "max_gap": float(np.max(np.diff(t))) if t.size > 1 else float("nan"),
            "max_abs_offset": float(np.nanmax(np.abs(off))) if np.any(~np.isnan(off)) else float("nan")}


# -- trades ------------------------------------------------------------------
def _is_buy(trades):
    side = pd.Series(trades["side"])
    if isinstance(side.dtype, pd.CategoricalDtype) or side.dtype == object:
        return np.asarray(side.astype(object) == "buy", dtype=bool)
    return np.asarray(side == 0, dtype=bool)


def quote_volume(trades):
    """Quote amount of each fill: ``amount_in`` for a buy (quote paid),
    ``amount_out`` for a sell (quote received) — the definition of the run's
    ``volume_<venue>`` summary.  ``side`` may be decoded names or codes
    (0 = buy)."""
    buy = _is_buy(trades)
    return np.where(buy, np.asarray(trades["amount_in"], float), np.asarray(trades["amount_out"], float))


def volume_by_cause(trades, by=("cause",), drop_empty=True):
    """Trade count and volume grouped by cause (or by any columns, e.g.
    ``by=("venue", "cause")``).

    Returns a DataFrame indexed by ``by`` with columns ``n_trades``,
    ``quote_volume`` (see ``quote_volume``) and ``base_volume`` (base
    received on buys plus base paid on sells), sorted by quote volume,
    largest first.  Causes with no trade are dropped unless
    ``drop_empty=False``.
    """
    df = pd.DataFrame({c: trades[c] for c in by})
    qv = quote_volume(trades)
    buy = _is_buy(trades)
    df["n_trades"] = 1
    df["quote_volume"] = qv
    df["base_volume"] = np.where(buy, np.asarray(trades["amount_out"], float),
                                 np.asarray(trades["amount_in"], float))
    out = df.groupby(list(by), observed=drop_empty).sum()
    if drop_empty:
        out = out[out["n_trades"] > 0]
    return out.sort_values("quote_volume", ascending=False, kind="stable")


def trades_over_time(trades, bin_seconds, value="n_trades", t_end=None):
    """Trades per time bin and cause: a DataFrame indexed by bin start (s),
    one column per cause present, values ``n_trades`` (count) or
    ``quote_volume``.  Bins are [k·bin, (k+1)·bin) from 0 to ``t_end``
    (default: the last trade)."""
    t = np.asarray(trades["t"], dtype=float)
    end = (t.max() if t.size else 0.0) if t_end is None else float(t_end)
    nbins = max(1, int(np.ceil(end / bin_seconds)) if end > 0 else 1)
    k = np.minimum((t // bin_seconds).astype(int), nbins - 1) if t.size else np.zeros(0, int)
    vals = np.ones(t.size) if value == "n_trades" else quote_volume(trades)
    df = pd.DataFrame({"bin": k, "cause": np.asarray(trades["cause"], dtype=object), "v": vals})
    table = df.pivot_table(index="bin", columns="cause", values="v", aggfunc="sum", fill_value=0)
    table = table.reindex(range(nbins), fill_value=0)
    table.index = table.index.astype(float) * bin_seconds
    table.index.name = "t"
    table.columns.name = "cause"
    return table
