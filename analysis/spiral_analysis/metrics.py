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
           "share_price_drawdown", "max_share_price_drawdown", "aggregate_extremes",
           "bad_debt_total", "bad_debt_by_protocol", "bad_debt_events_over_time",
           "liquidation_value", "liquidated_value", "execution_discount", "liquidation_summary",
           "cascade_depth", "liquidations_by_generation", "liquidations_over_time",
           "liquidation_trade_losses", "liquidation_losses", "run_references_by_venue",
           "price_drawdowns", "under_water_table", "keeper_names", "liquidator_profit",
           "auction_stats", "amplification", "paired_amplification", "blocks_active",
           "run_metrics", "RUN_METRICS", "t_quantile", "mean_ci", "paired_ci"]


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


# -- liquidations, auctions, keepers (docs/output.md: /events/liquidations,
#    /events/auctions, /events/trades cause liquidation, /summary) -----------
def _names(col):
    """A decoded (Categorical/object) or plain column as an object ndarray."""
    s = pd.Series(col)
    return np.asarray(s.astype(object)) if len(s) else np.zeros(0, dtype=object)


def bad_debt_total(liquidations):
    """Σ ``bad_debt`` over ``/events/liquidations`` (USD, each write-off
    valued at its time) — equals ``/summary`` ``bad_debt_total`` (write-offs
    are the only source of bad debt)."""
    return float(np.sum(np.asarray(liquidations["bad_debt"], dtype=float))) if len(liquidations) else 0.0


def bad_debt_by_protocol(liquidations, protocols=()):
    """Σ ``bad_debt`` per protocol (a Series indexed by protocol name; the
    names in ``protocols`` appear with 0 when they wrote nothing off) —
    equals ``/summary`` ``bad_debt_<protocol>``."""
    df = pd.DataFrame({"protocol": _names(liquidations["protocol"]),
                       "bad_debt": np.asarray(liquidations["bad_debt"], dtype=float)})
    s = df.groupby("protocol")["bad_debt"].sum()
    for p in protocols:
        if p not in s.index:
            s.loc[p] = 0.0
    s.index.name = "protocol"
    return s.astype(float)


def bad_debt_events_over_time(liquidations):
    """Cumulative bad debt at each write-off, from the event table (exact
    times, unlike the sampled ``/protocols`` ``bad_debt``): a DataFrame
    indexed by t with one column per protocol and ``total``, only the rows
    with ``bad_debt`` > 0 (empty when there was none)."""
    bd = np.asarray(liquidations["bad_debt"], dtype=float)
    sel = bd > 0
    t = np.asarray(liquidations["t"], dtype=float)[sel]
    prot = _names(liquidations["protocol"])[sel]
    out = pd.DataFrame(index=pd.Index(t, name="t"))
    for p in sorted(set(prot.tolist())):
        out[p] = np.cumsum(np.where(prot == p, bd[sel], 0.0))
    out["total"] = np.cumsum(bd[sel])
    return out


def liquidation_value(liquidations):
    """Value of the collateral each liquidation took: ``collateral_seized ×
    oracle_price`` (USD, at the protocol's price), one value per row.  (The
    ``/summary`` ``liquidated_value`` is the other side: ``debt_repaid`` ×
    the debt's price.)"""
    return (np.asarray(liquidations["collateral_seized"], dtype=float)
            * np.asarray(liquidations["oracle_price"], dtype=float))


def liquidated_value(liquidations, by=None):
    """Σ ``collateral_seized × oracle_price`` over ``/events/liquidations``
    (USD).  ``by`` a column name (``"mechanism"``, ``"protocol"``,
    ``"generation"``, ...) or a list of them: a Series per group (groups
    without a row are left out).  Rows where no collateral moved (write-offs:
    ``collateral_seized`` = 0) add 0."""
    v = liquidation_value(liquidations)
    if by is None:
        return float(np.nansum(v)) if v.size else 0.0
    by = [by] if isinstance(by, str) else list(by)
    df = pd.DataFrame({c: (_names(liquidations[c]) if c != "generation"
                           else np.asarray(liquidations[c])) for c in by})
    df["value"] = v
    return df.groupby(by)["value"].sum()


def execution_discount(liquidations):
    """1 − Σ seized·exec_price / Σ seized·oracle_price over the rows where
    collateral moved (``exec_price`` not NaN): what the liquidations paid
    below the protocol's price, on average, weighted by value (the
    auction_vs_amm table's "exec discount").  NaN without such rows."""
    s = np.asarray(liquidations["collateral_seized"], dtype=float)
    ex = np.asarray(liquidations["exec_price"], dtype=float)
    op = np.asarray(liquidations["oracle_price"], dtype=float)
    ok = ~np.isnan(ex) & (s > 0)
    den = float(np.sum(s[ok] * op[ok]))
    return 1.0 - float(np.sum(s[ok] * ex[ok])) / den if den > 0 else float("nan")


def liquidation_summary(liquidations, by="mechanism"):
    """Per group (default per mechanism): ``n`` rows, ``collateral_seized``,
    ``value`` (Σ seized × oracle_price), ``debt_repaid``, ``bad_debt``,
    ``exec_discount`` (see ``execution_discount``), ``max_generation``."""
    rows = {}
    keys = _names(liquidations[by]) if len(liquidations) else np.zeros(0, dtype=object)
    for k in pd.unique(keys):
        sel = keys == k
        sub = liquidations[sel] if isinstance(liquidations, pd.DataFrame) else \
            {c: np.asarray(liquidations[c])[sel] for c in liquidations}
        rows[k] = {"n": int(sel.sum()),
                   "collateral_seized": float(np.sum(np.asarray(sub["collateral_seized"], float))),
                   "value": liquidated_value(sub),
                   "debt_repaid": float(np.sum(np.asarray(sub["debt_repaid"], float))),
                   "bad_debt": bad_debt_total(sub),
                   "exec_discount": execution_discount(sub),
                   "max_generation": int(np.max(np.asarray(sub["generation"])))}
    out = pd.DataFrame.from_dict(rows, orient="index",
                                 columns=["n", "collateral_seized", "value", "debt_repaid",
                                          "bad_debt", "exec_discount", "max_generation"])
    out.index.name = by
    return out


def cascade_depth(liquidations):
    """Highest ``generation`` of a liquidation (0 when there was none) —
    ``/summary`` ``cascade_depth``."""
    g = np.asarray(liquidations["generation"])
    return int(g.max()) if g.size else 0


def liquidations_by_generation(liquidations):
    """One row per cascade generation present (index ``generation``,
    ascending): ``n`` liquidations, ``collateral_seized``, ``value`` (Σ
    seized × oracle_price), ``debt_repaid``, ``bad_debt``, ``t_first``,
    ``t_last``.  Generation 0: made liquidatable by an exogenous move; g + 1:
    by an oracle that read a market moved by generation-g sales."""
    g = np.asarray(liquidations["generation"]).astype(np.int64)
    df = pd.DataFrame({"generation": g, "n": 1,
                       "collateral_seized": np.asarray(liquidations["collateral_seized"], float),
                       "value": liquidation_value(liquidations),
                       "debt_repaid": np.asarray(liquidations["debt_repaid"], float),
                       "bad_debt": np.asarray(liquidations["bad_debt"], float),
                       "t_first": np.asarray(liquidations["t"], float)})
    df["t_last"] = df["t_first"]
    out = df.groupby("generation").agg({"n": "sum", "collateral_seized": "sum", "value": "sum",
                                        "debt_repaid": "sum", "bad_debt": "sum",
                                        "t_first": "min", "t_last": "max"})
    return out


def liquidations_over_time(liquidations, bin_seconds, value="value", t_end=None, max_generation=None):
    """Liquidations per time bin and generation: a DataFrame indexed by bin
    start (s), one column per generation present, values ``n`` (count) or
    ``value`` (Σ seized × oracle_price).  Bins [k·bin, (k+1)·bin) from 0 to
    ``t_end`` (default: the last liquidation).  With ``max_generation`` the
    generations above it are summed into that column."""
    t = np.asarray(liquidations["t"], dtype=float)
    end = (t.max() if t.size else 0.0) if t_end is None else float(t_end)
    nbins = max(1, int(np.ceil(end / bin_seconds)) if end > 0 else 1)
    k = np.minimum((t // bin_seconds).astype(int), nbins - 1) if t.size else np.zeros(0, int)
    g = np.asarray(liquidations["generation"]).astype(np.int64)
    if max_generation is not None:
        g = np.minimum(g, max_generation)
    v = np.ones(t.size) if value == "n" else liquidation_value(liquidations)
    df = pd.DataFrame({"bin": k, "generation": g, "v": v})
    tab = df.pivot_table(index="bin", columns="generation", values="v", aggfunc="sum", fill_value=0)
    tab = tab.reindex(range(nbins), fill_value=0)
    tab.index = tab.index.astype(float) * bin_seconds
    tab.index.name = "t"
    return tab


def _sign_amounts(trades):
    """(base amount, quote amount) of each fill: a sell pays base
    (amount_in) for quote (amount_out); a buy the reverse."""
    buy = _is_buy(trades)
    ai = np.asarray(trades["amount_in"], float)
    ao = np.asarray(trades["amount_out"], float)
    return np.where(buy, ao, ai), np.where(buy, ai, ao), buy


def liquidation_trade_losses(trades, reference, cause="liquidation"):
    """Liquidation sales against the reference price: one row per fill of
    ``cause`` (default ``liquidation``) in ``/events/trades``.

    ``reference`` is a ``/markets/reference_<asset>`` frame (t, price) used
    for every venue, or ``{venue name: frame}``.  The reference price at a
    trade is its last sample at or before the trade time (``asof``) — exact
    when the reference records every update (``record_every_update: true``),
    otherwise stale by up to one sampling interval.

    Columns: t, venue, agent, side, generation, ``amount`` (base sold or
    bought), ``proceeds`` (quote received on a sell, paid on a buy),
    ``reference_price``, ``reference_value`` = reference × amount and
    ``loss`` = what the sale gave up against the reference, in the quote
    unit: reference × amount − proceeds for a sell (quote paid − reference ×
    amount for a buy); ``loss_share`` = loss / reference_value.  The quote
    token is taken at 1 (a stablecoin numeraire).
    """
    c = _names(trades["cause"])
    sel = c == cause
    sub = trades[sel] if isinstance(trades, pd.DataFrame) else {k: np.asarray(v)[sel] for k, v in trades.items()}
    t = np.asarray(sub["t"], dtype=float)
    venue = _names(sub["venue"])
    base, quote, buy = _sign_amounts(sub) if t.size else (np.zeros(0), np.zeros(0), np.zeros(0, bool))
    ref = np.full(t.size, np.nan)
    if isinstance(reference, dict):
        for v, r in reference.items():
            m = venue == v
            if m.any():
                ref[m] = asof(t[m], r["t"], r["price"])
    else:
        ref = asof(t, reference["t"], reference["price"])
    rv = ref * base
    loss = np.where(buy, quote - rv, rv - quote)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = loss / rv
    return pd.DataFrame({"t": t, "venue": venue, "agent": _names(sub["agent"]),
                         "side": np.where(buy, "buy", "sell"),
                         "generation": np.asarray(sub["generation"]).astype(np.int64),
                         "amount": base, "proceeds": quote, "reference_price": ref,
                         "reference_value": rv, "loss": loss, "loss_share": share})


def liquidation_losses(trades, reference, cause="liquidation"):
    """Σ ``loss`` of ``liquidation_trade_losses``: collateral sold below the
    reference, Σ (reference × amount − proceeds), in the quote unit (0 when
    nothing was sold; NaN if a sale has no reference price)."""
    lt = liquidation_trade_losses(trades, reference, cause=cause)
    return float(np.sum(lt["loss"].to_numpy())) if len(lt) else 0.0


def run_references_by_venue(run):
    """{venue: its reference frame} for the venues whose base asset has a
    reference process (``Run.reference_for``)."""
    refs = run.references()
    out = {}
    for v in run.venues():
        r = run.reference_for(v)
        if r is not None:
            out[v] = refs[r]
    return out


def price_drawdowns(run):
    """Max drawdown over the samples of every reference and venue and over the
    publications of every oracle (its published ``price``, in delivery
    order), beside the ``/summary`` ``max_drawdown_<name>`` (over every update)
    where there is one.  A DataFrame indexed by name: ``kind``
    (reference, amm, lob, oracle), ``max_drawdown``, ``summary``, ``min_price``."""
    summ = run.summary()
    rows = {}
    for n, df in run.markets().items():
        p = np.asarray(df["price"], float)
        rows[n] = (df.attrs.get("kind"), max_drawdown(p),
                   summ.get(f"max_drawdown_{n}", float("nan")),
                   float(np.nanmin(p)) if np.any(~np.isnan(p)) else float("nan"))
    for n, df in run.oracles().items():
        d = df.sort_values("delivered_t", kind="stable")
        p = np.asarray(d["price"], float)
        rows[n] = ("oracle", max_drawdown(p), summ.get(f"max_drawdown_{n}", float("nan")),
                   float(np.nanmin(p)) if np.any(~np.isnan(p)) else float("nan"))
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["kind", "max_drawdown", "summary", "min_price"])


def under_water_table(run, thresholds=(0.01, 0.05, 0.10), kinds=("venue", "oracle")):
    """``time_under_water`` of every venue and every oracle's delivered price
    against the reference of its asset, per threshold: a DataFrame with
    ``series``, ``kind`` (venue | oracle), ``reference``, ``threshold``,
    ``total``, ``longest``, ``fraction``.  An oracle's delivered price steps
    at ``delivered_t``.  ``kinds`` limits it to venues or oracles."""
    refs = run.references()
    rows = []
    t_end = run.t_end
    for v, df in (run.venues().items() if "venue" in kinds else ()):
        r = run.reference_for(v)
        if r is None:
            continue
        for th in thresholds:
            uw = time_under_water(df["t"], df["price"], refs[r]["t"], refs[r]["price"], th, t_end=t_end)
            rows.append((v, "venue", r, th, uw.total, uw.longest, uw.fraction))
    for o, odf in (run.oracles().items() if "oracle" in kinds else ()):
        src = run.oracle_source_market(o)
        if src is None:
            continue
        r = src if src in refs else run.reference_for(src)
        if r is None or not len(odf):
            continue
        d = odf.sort_values("delivered_t", kind="stable")
        for th in thresholds:
            uw = time_under_water(d["delivered_t"], d["price"], refs[r]["t"], refs[r]["price"], th,
                                  t_end=t_end)
            rows.append((o, "oracle", r, th, uw.total, uw.longest, uw.fraction))
    return pd.DataFrame(rows, columns=["series", "kind", "reference", "threshold", "total",
                                       "longest", "fraction"])


def keeper_names(summary):
    """Keeper populations of a run, from its ``/summary`` keys (every keeper
    writes ``n_barks_<name>``)."""
    return sorted(k[len("n_barks_"):] for k in summary if k.startswith("n_barks_"))


def liquidator_profit(summary):
    """{keeper population: ``profit_<name>``} (numeraire; proceeds − paid −
    gas, holdings at the protocol's price at the end), plus ``total``.
    Empty without keepers."""
    out = {k: float(summary[f"profit_{k}"]) for k in keeper_names(summary) if f"profit_{k}" in summary}
    if out:
        out["total"] = float(sum(out.values()))
    return out


def auction_stats(auctions):
    """Statistics of ``/events/auctions`` (closed auctions), a dict:

    n, n_zero_bid, zero_bid_share (n_zero_bid / n — the ``/summary``
    ``zero_bid_share``), raised, tab, lot_value (Σ ``collateral_value``),
    raised_over_tab (Σ raised / Σ tab), mean_raised_over_tab (per-auction
    mean), recovery (Σ raised / Σ collateral_value: debt token per USD of lot,
    i.e. the protocol's recovery with the debt token at 1), duration_mean,
    duration_median, duration_max (``t_end − t_start``, s), mean_bids.
    Empty table: n = 0 and NaN elsewhere (zero_bid_share 0)."""
    n = len(auctions)
    nan = float("nan")
    if n == 0:
        return dict(n=0, n_zero_bid=0, zero_bid_share=0.0, raised=0.0, tab=0.0, lot_value=0.0,
                    raised_over_tab=nan, mean_raised_over_tab=nan, recovery=nan,
                    duration_mean=nan, duration_median=nan, duration_max=nan, mean_bids=nan)
    raised = np.asarray(auctions["raised"], float)
    tab = np.asarray(auctions["tab"], float)
    val = np.asarray(auctions["collateral_value"], float)
    dur = np.asarray(auctions["t_end"], float) - np.asarray(auctions["t_start"], float)
    zb = int(np.sum(np.asarray(auctions["zero_bid"]).astype(np.int64) == 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rt = raised / tab
    return dict(n=n, n_zero_bid=zb, zero_bid_share=zb / n, raised=float(raised.sum()),
                tab=float(tab.sum()), lot_value=float(val.sum()),
                raised_over_tab=float(raised.sum() / tab.sum()) if tab.sum() > 0 else nan,
                mean_raised_over_tab=float(np.nanmean(rt)) if np.any(np.isfinite(rt)) else nan,
                recovery=float(raised.sum() / val.sum()) if val.sum() > 0 else nan,
                duration_mean=float(dur.mean()), duration_median=float(np.median(dur)),
                duration_max=float(dur.max()),
                mean_bids=float(np.mean(np.asarray(auctions["n_bids"], float))))


def amplification(summary, key="amplification"):
    """The run's ``/summary`` amplification (drawdown with feedback ÷ without,
    written by ``spiral run --amplification``, which also runs the
    no-feedback twin; ``key="amplification_<market>"`` for one market), or
    None when the run has none."""
    v = summary.get(key)
    return None if v is None else float(v)


def paired_amplification(with_feedback, without_feedback):
    """Per-seed amplification of two paired series (same seeds, e.g. the
    ``max_drawdown_<venue>`` of the arms ``counterfactual: none`` and
    ``no-feedback``): ``with / without`` elementwise (NaN where ``without``
    is 0 or either is NaN).  Arrays or Series aligned on the seed."""
    a = np.asarray(with_feedback, dtype=float)
    b = np.asarray(without_feedback, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = a / b
    return np.where((b == 0) | np.isnan(a) | np.isnan(b), np.nan, r)


def blocks_active(blocks):
    """Whether ``/events/blocks`` is worth drawing: rows, and agent
    transactions or a base fee that moved."""
    if blocks is None or len(blocks) == 0:
        return False
    bf = np.asarray(blocks["base_fee"], float)
    n_agent = np.asarray(blocks["n_agent_tx"]) if "n_agent_tx" in blocks else np.zeros(1)
    return bool(np.sum(n_agent) > 0 or (np.nanmax(bf) > np.nanmin(bf)))


def run_metrics(run):
    """Scalar metrics of one run computed from its tables (for ``compare``):

    liquidation_losses          Σ (reference × amount − proceeds) over the
                                liquidation sales (``liquidation_losses``)
    liquidation_loss_share      that / Σ reference × amount (NaN: no sale)
    liquidated_collateral_value Σ collateral_seized × oracle_price
    bad_debt_events             Σ bad_debt of /events/liquidations
    cascade_depth_events        highest liquidation generation
    exec_discount               ``execution_discount``
    auction_raised_over_tab, auction_zero_bid_share, auction_duration_mean
                                from ``auction_stats`` (NaN without auctions)
    liquidator_profit           Σ profit over keeper populations (NaN: none)
    """
    nan = float("nan")
    out = {}
    h = run.h5
    if "events/trades" in h:
        lt = liquidation_trade_losses(run.trades(), run_references_by_venue(run))
        out["liquidation_losses"] = float(np.sum(lt["loss"].to_numpy())) if len(lt) else 0.0
        den = float(np.sum(lt["reference_value"].to_numpy())) if len(lt) else 0.0
        out["liquidation_loss_share"] = out["liquidation_losses"] / den if den > 0 else nan
        # (NaN when a sale's venue has no reference process)
    if "events/liquidations" in h:
        liq = run.table("events/liquidations")
        out["liquidated_collateral_value"] = liquidated_value(liq)
        out["bad_debt_events"] = bad_debt_total(liq)
        out["cascade_depth_events"] = float(cascade_depth(liq))
        out["exec_discount"] = execution_discount(liq)
    if "events/auctions" in h:
        st = auction_stats(run.table("events/auctions"))
        out["auction_raised_over_tab"] = st["raised_over_tab"]
        out["auction_zero_bid_share"] = st["zero_bid_share"] if st["n"] else nan
        out["auction_duration_mean"] = st["duration_mean"]
    lp = liquidator_profit(run.summary())
    out["liquidator_profit"] = lp.get("total", nan)
    return out


RUN_METRICS = ("liquidation_losses", "liquidation_loss_share", "liquidated_collateral_value",
               "bad_debt_events", "cascade_depth_events", "exec_discount",
               "auction_raised_over_tab", "auction_zero_bid_share", "auction_duration_mean",
               "liquidator_profit")


# -- confidence intervals (no scipy: Student t from the incomplete beta) -----
def _betacf(a, b, x):
    """Continued fraction of the regularized incomplete beta (modified Lentz,
    Numerical Recipes §6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-15:
            break
    return h


def _betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b)."""
    import math
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(x, df):
    """Student t distribution function with ``df`` (> 0, may be fractional)
    degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + x * x))
    return 1.0 - tail if x >= 0 else tail


def t_quantile(p, df):
    """Quantile of Student's t with ``df`` degrees of freedom (bisection on
    ``t_cdf`` to ~1e-12; no scipy): ``t_quantile(0.975, 2)`` = 4.302652729...
    NaN for df ≤ 0 or p outside (0, 1)."""
    import math
    if not (df > 0) or not (0 < p < 1) or math.isnan(p):
        return float("nan")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
        if hi > 1e12:
            return float("inf")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


CI = namedtuple("CI", "mean lo hi half n std")
CI.__doc__ = """A mean with its two-sided t confidence interval:
mean, lo = mean − half, hi = mean + half, half = t_{(1+level)/2, n−1} · std / √n,
n (finite values used), std (sample standard deviation, ddof 1).  With n < 2
the interval is NaN (std too when n = 0)."""


def mean_ci(values, level=0.95):
    """Mean of the finite ``values`` with a Student-t confidence interval at
    ``level`` (default 95 %): mean ± t_{(1+level)/2, n−1} · s / √n."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return CI(float("nan"), float("nan"), float("nan"), float("nan"), 0, float("nan"))
    m = float(v.mean())
    if n < 2:
        return CI(m, float("nan"), float("nan"), float("nan"), 1, float("nan"))
    s = float(v.std(ddof=1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * s / np.sqrt(n)
    return CI(m, m - half, m + half, float(half), n, s)


def paired_ci(a, b, level=0.95):
    """Paired difference ``a − b`` (arrays aligned on the seed: common random
    numbers make the pairs share their noise): ``mean_ci`` of the per-seed
    differences, pairs with a non-finite side dropped."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return mean_ci(a - b, level=level)
