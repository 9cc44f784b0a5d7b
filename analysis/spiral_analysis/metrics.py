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
           "volume_by_cause", "trades_over_time", "quote_volume",
           "collateral_multiplier", "multiplier_series", "max_collateral_multiplier",
           "HF_QUANTILES", "hf_quantiles", "hf_at", "bad_debt_over_time",
           "share_price_drawdown", "max_share_price_drawdown", "aggregate_extremes"]


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


# -- lending -----------------------------------------------------------------
def collateral_multiplier(collateral, debt):
    """The Collateral Multiplier C / (C − D) (DESIGN §2), elementwise.

    1 without borrowing; n loops at LTV λ give (1 − λⁿ⁺¹)/(1 − λ).  +inf when
    0 < C ≤ D (equity gone); 1 when nothing is posted (C = 0, e.g. before the
    first deposit) — the convention spiral writes in ``/system``.  NaN in,
    NaN out.
    """
    c = np.asarray(collateral, dtype=float)
    d = np.asarray(debt, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = c / (c - d)
    m = np.where(c <= d, np.where(c > 0, np.inf, 1.0), m)
    return np.where(np.isnan(c) | np.isnan(d), np.nan, m)


def multiplier_series(system):
    """The ``/system`` leverage columns as one frame indexed by t:
    ``collateral_multiplier`` (as written), ``recomputed`` (C / (C − D) from
    ``total_collateral`` and ``total_debt``), ``equity`` = C − D and every
    ``leverage_layer_<k>`` (NaN: no position on that layer)."""
    t = np.asarray(system["t"], dtype=float)
    out = pd.DataFrame(index=pd.Index(t, name="t"))
    out["collateral_multiplier"] = np.asarray(system["collateral_multiplier"], dtype=float)
    c = np.asarray(system["total_collateral"], dtype=float)
    d = np.asarray(system["total_debt"], dtype=float)
    out["recomputed"] = collateral_multiplier(c, d)
    out["equity"] = c - d
    for k in sorted((k for k in system.columns if str(k).startswith("leverage_layer_")),
                    key=lambda k: int(str(k).rsplit("_", 1)[1])):
        out[k] = np.asarray(system[k], dtype=float)
    return out


def max_collateral_multiplier(system):
    """(value, t) of the highest ``collateral_multiplier`` over the samples
    (+inf counts: equity gone).  The run's ``/summary``
    ``max_collateral_multiplier`` is the same maximum over the same samples.
    (NaN, NaN) when empty or all NaN."""
    m = np.asarray(system["collateral_multiplier"], dtype=float)
    if m.size == 0 or np.all(np.isnan(m)):
        return float("nan"), float("nan")
    i = int(np.nanargmax(m))
    return float(m[i]), float(np.asarray(system["t"], dtype=float)[i])


HF_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _qname(q):
    return "q%02d" % round(100 * q) if abs(100 * q - round(100 * q)) < 1e-9 else f"q{100 * q:g}"


def hf_quantiles(positions, quantiles=HF_QUANTILES, by_protocol=False):
    """Health-factor distribution per snapshot of ``/positions``.

    One row per snapshot time ``t`` (and per ``protocol`` with
    ``by_protocol=True``; index (protocol, t)), columns:

    n_positions     live positions in the snapshot
    n_debt          those with a finite HF (with debt; HF = +inf without)
    n_liquidatable  rows with ``liquidatable`` = 1 (HF < 1)
    share_liquidatable  n_liquidatable / n_positions (as /protocols'
                    n_liquidatable / n_positions)
    collateral_value, debt_value   sums over the snapshot
    q05 .. q95      quantiles of the finite HFs (numpy's default linear
                    interpolation; NaN when no position has debt)

    Works on tens of millions of rows: one sort and numpy per group.
    """
    t = np.asarray(positions["t"], dtype=float)
    hf = np.asarray(positions["hf"], dtype=float)
    liq = np.asarray(positions["liquidatable"]).astype(np.int64)
    coll = np.asarray(positions["collateral_value"], dtype=float)
    debt = np.asarray(positions["debt_value"], dtype=float)
    qcols = [_qname(q) for q in quantiles]
    if by_protocol:
        proto = pd.Categorical(positions["protocol"])
        pc = proto.codes.astype(np.int64)
        cats = list(proto.categories)
    else:
        pc = np.zeros(t.size, dtype=np.int64)
        cats = [None]
    # group keys: (protocol code, t) in sorted order
    order = np.lexsort((t, pc))
    pc_s, t_s = pc[order], t[order]
    if t.size:
        brk = np.flatnonzero((np.diff(pc_s) != 0) | (np.diff(t_s) != 0)) + 1
        starts = np.concatenate(([0], brk))
        ends = np.concatenate((brk, [t.size]))
    else:
        starts = ends = np.zeros(0, dtype=np.int64)
    hf_s, liq_s, c_s, d_s = hf[order], liq[order], coll[order], debt[order]
    n = ends - starts
    rows = {"n_positions": n,
            "n_debt": np.add.reduceat(np.isfinite(hf_s).astype(np.int64), starts) if n.size else n,
            "n_liquidatable": np.add.reduceat(liq_s, starts) if n.size else n,
            "collateral_value": np.add.reduceat(c_s, starts) if n.size else np.zeros(0),
            "debt_value": np.add.reduceat(d_s, starts) if n.size else np.zeros(0)}
    qv = np.full((n.size, len(quantiles)), np.nan)
    for g, (a, b) in enumerate(zip(starts, ends)):
        h = hf_s[a:b]
        h = h[np.isfinite(h)]
        if h.size:
            qv[g] = np.quantile(h, quantiles)
    df = pd.DataFrame(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        df.insert(3, "share_liquidatable", df["n_liquidatable"] / df["n_positions"])
    for j, c in enumerate(qcols):
        df[c] = qv[:, j]
    tt = t_s[starts] if n.size else np.zeros(0)
    if by_protocol:
        df.index = pd.MultiIndex.from_arrays(
            [pd.Categorical.from_codes(pc_s[starts] if n.size else np.zeros(0, int), categories=cats),
             tt], names=["protocol", "t"])
    else:
        df.index = pd.Index(tt, name="t")
    df.attrs["quantiles"] = tuple(quantiles)
    return df


def hf_at(hfq, which="first"):
    """The ``hf_quantiles`` row(s) of the first or last snapshot (per
    protocol if the frame has a protocol level)."""
    if isinstance(hfq.index, pd.MultiIndex):
        g = hfq.groupby(level="protocol", observed=True)
        return g.head(1) if which == "first" else g.tail(1)
    return hfq.iloc[:1] if which == "first" else hfq.iloc[-1:]


def bad_debt_over_time(protocols, system=None):
    """Bad debt written off so far, per protocol, on the union of their
    sample times (each protocol's series held constant between its samples;
    NaN before its first sample).  ``protocols`` is ``{name: /protocols/<name>
    frame}`` (``Run.protocols()``).  Columns: one per protocol, ``total``
    (their sum) and, when ``system`` is given, ``system_total`` (its
    ``total_bad_debt``).  Indexed by t."""
    grids = [np.asarray(df["t"], dtype=float) for df in protocols.values()]
    if system is not None:
        grids.append(np.asarray(system["t"], dtype=float))
    t = np.unique(np.concatenate(grids)) if grids else np.zeros(0)
    out = pd.DataFrame(index=pd.Index(t, name="t"))
    for name, df in protocols.items():
        out[name] = asof(t, df["t"], df["bad_debt"])
    out["total"] = out[list(protocols)].sum(axis=1, min_count=1) if protocols else np.nan
    if system is not None:
        out["system_total"] = asof(t, system["t"], system["total_bad_debt"])
    return out


def share_price_drawdown(vault):
    """Drawdown of a vault's share price at each sample (``drawdown``:
    1 − price / running peak; above 1 once the share price is negative,
    i.e. NAV < 0)."""
    return drawdown(np.asarray(vault["share_price"], dtype=float))


def max_share_price_drawdown(vault):
    """Largest share-price drawdown of a /vaults/<name> table (over samples;
    the summary's ``min_share_price_<name>`` also sees operations)."""
    return max_drawdown(np.asarray(vault["share_price"], dtype=float))


def aggregate_extremes(df, columns=None):
    """Start, min, max and end of each numeric column of a sampled table
    (e.g. a ``/protocols/<name>`` frame), NaN skipped: a DataFrame indexed by
    column with ``start``, ``min``, ``t_min``, ``max``, ``t_max``, ``end``."""
    t = np.asarray(df["t"], dtype=float)
    cols = columns or [c for c in df.columns if c not in ("t", "t_us")
                       and np.issubdtype(np.asarray(df[c]).dtype, np.number)]
    rows = {}
    for c in cols:
        v = np.asarray(df[c], dtype=float)
        ok = ~np.isnan(v)
        if not ok.any():
            rows[c] = dict(start=np.nan, min=np.nan, t_min=np.nan, max=np.nan, t_max=np.nan, end=np.nan)
            continue
        i, j = int(np.nanargmin(v)), int(np.nanargmax(v))
        rows[c] = dict(start=float(v[ok][0]), min=float(v[i]), t_min=float(t[i]),
                       max=float(v[j]), t_max=float(t[j]), end=float(v[ok][-1]))
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["start", "min", "t_min", "max", "t_max", "end"])
