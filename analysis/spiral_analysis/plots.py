"""Figures of one run (matplotlib, Agg backend: no display needed).

Every function takes a ``Run`` and returns a ``matplotlib.figure.Figure``
(or None when the run has nothing to draw); ``save(fig, path)`` writes a PNG.

- ``price_paths``: per base asset, the reference price(s), the venues' prices,
  the oracles' delivered prices (step lines that change at ``delivered_t``)
  and every trade as a marker at (t, price_after) coloured by cause.
- ``trades_by_cause``: trade count and quote volume per time bin, stacked by cause.
- ``oracle_vs_venue``: one oracle's delivered price against its source venue and
  the reference, with the deviations in percent underneath.
- ``collateral_multiplier``: /system's Collateral Multiplier and per-layer
  leverage (top), total collateral, debt and bad debt (bottom).
- ``hf_distribution``: /positions' health factors per snapshot as a fan chart
  (5–95 % and 25–75 % bands, median) on a log axis with HF = 1, and the share
  of liquidatable positions; one column per protocol.
- ``protocols``: per /protocols/<name>: collateral and debt, utilization and
  borrow rate (pool) or debt per collateral type (cdp), receipt exchange rate
  (pool) or surplus (cdp), bad debt and liquidatable positions.
- ``vaults``: per /vaults/<name>: share price (with its drawdown), leverage
  against the target band, NAV / collateral / debt.
- ``liquidations_on_price``: liquidations as markers on their collateral's
  price path (area by value, colour by cascade generation).
- ``liquidations_by_generation``: count and value per generation; value per
  time bin stacked by generation.
- ``auctions``: raised vs lot value (zero bids in red), raised / tab by kick time.
- ``blocks``: base fee and pending / included agent transactions per block.
- ``bad_debt``: cumulative write-offs per protocol (events and samples).
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import metrics  # noqa: E402

CAUSES = ["arbitrage", "liquidation", "loop", "deleverage", "noise", "redemption",
          "scripted", "external", "market_making", "value", "momentum", "liquidity"]
_PALETTE = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors


def cause_color(cause):
    """A fixed colour per trade cause, the same in every figure."""
    i = CAUSES.index(cause) if cause in CAUSES else len(CAUSES) + hash(cause) % 4
    return _PALETTE[i % len(_PALETTE)]


def time_scale(t_max):
    """(divisor, label) for a time axis spanning ``t_max`` seconds."""
    if t_max >= 3 * 86400:
        return 86400.0, "simulated time (days)"
    if t_max >= 2 * 3600:
        return 3600.0, "simulated time (hours)"
    if t_max >= 120:
        return 60.0, "simulated time (minutes)"
    return 1.0, "simulated time (s)"


def _t_end(run):
    return float(run.t_end or run.horizon or 1.0)


def save(fig, path, dpi=110):
    """Write ``fig`` as PNG and close it; returns ``path``."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _asset_of(run, market):
    a = run.group_attrs(f"markets/{market}")
    return a.get("asset") or a.get("base") or market


def price_paths(run, max_markers=20000):
    """Price paths per base asset: references (black steps), venues (lines),
    oracles (dashed steps at delivered_t) and trades (dots at price_after,
    coloured by cause; at most ``max_markers``, evenly thinned beyond)."""
    markets = run.markets()
    if not markets:
        return None
    oracles = run.oracles()
    trades = run.trades() if "events/trades" in run.h5 else None
    assets = []
    for n in markets:
        a = _asset_of(run, n)
        if a not in assets:
            assets.append(a)
    div, xlabel = time_scale(_t_end(run))
    fig, axes = plt.subplots(len(assets), 1, figsize=(11, 4.2 * len(assets)), squeeze=False)
    for ax, asset in zip(axes[:, 0], assets):
        names = [n for n in markets if _asset_of(run, n) == asset]
        for n in names:
            df = markets[n]
            kind = df.attrs.get("kind")
            if kind == "reference":
                ax.step(df["t"] / div, df["price"], where="post", color="black", lw=1.4,
                        label=f"{n} (reference)", zorder=3)
            else:
                ax.plot(df["t"] / div, df["price"], lw=1.2, label=f"{n} ({df.attrs.get('type', kind)})",
                        zorder=4)
            if kind == "lob":
                ax.fill_between(df["t"] / div, df["best_bid"], df["best_ask"], step="post",
                                alpha=0.15, color="C0", label=f"{n} bid–ask")
        for o, odf in oracles.items():
            src = run.oracle_source_market(o)
            if src in names and len(odf):
                d = odf.sort_values("delivered_t", kind="stable")
                x = np.append(d["delivered_t"].to_numpy(), _t_end(run))
                y = np.append(d["price"].to_numpy(), d["price"].to_numpy()[-1])
                ax.step(x / div, y, where="post", ls="--", lw=1.1,
                        label=f"{o} ({odf.attrs.get('type')}, delivered)", zorder=5)
        if trades is not None and len(trades):
            tv = trades[trades["venue"].astype(object).isin(names)]
            if len(tv) > max_markers:
                tv = tv.iloc[np.linspace(0, len(tv) - 1, max_markers).astype(int)]
            for cause in [c for c in tv["cause"].cat.categories if (tv["cause"] == c).any()]:
                sel = tv[tv["cause"] == cause]
                ax.scatter(sel["t"] / div, sel["price_after"], s=9 if len(tv) < 2000 else 3,
                           color=cause_color(cause), alpha=0.8, lw=0,
                           label=f"trade: {cause} ({(trades['cause'] == cause).sum()})", zorder=6)
        ax.set_title(f"{run.name}: {asset} price paths (seed {run.seed})")
        ax.set_ylabel("price (numeraire per %s)" % asset)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best", ncol=2, markerscale=2)
    fig.tight_layout()
    return fig


def _nice_bin(span, target=60):
    raw = span / target
    for b in (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400):
        if b >= raw:
            return float(b)
    return 86400.0 * np.ceil(raw / 86400.0)


def trades_by_cause(run, bin_seconds=None):
    """Stacked bars of trades per time bin by cause: count (top) and quote
    volume (bottom).  None when the run has no trades."""
    trades = run.trades()
    if len(trades) == 0:
        return None
    end = _t_end(run)
    b = bin_seconds or _nice_bin(end)
    div, xlabel = time_scale(end)
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for ax, value, ylabel in ((axes[0], "n_trades", "trades (fills) per bin"),
                              (axes[1], "quote_volume", "quote volume per bin")):
        tab = metrics.trades_over_time(trades, b, value=value, t_end=end)
        bottom = np.zeros(len(tab))
        for cause in tab.columns:
            ax.bar(tab.index / div, tab[cause], width=b / div, align="edge", bottom=bottom,
                   color=cause_color(cause), label=str(cause), lw=0)
            bottom += tab[cause].to_numpy()
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(title="cause", fontsize=8)
    axes[0].set_title(f"{run.name}: trades by cause ({len(trades)} fills, bins of {b:g} s)")
    axes[1].set_xlabel(xlabel)
    fig.tight_layout()
    return fig


def oracle_vs_venue(run, oracle):
    """One oracle against its source market and the reference of that asset:
    prices (top) and deviations in percent (bottom): delivered vs source
    market, and source venue vs reference."""
    odf = run.table(f"oracles/{oracle}")
    src = run.oracle_source_market(oracle)
    markets = run.markets()
    if src is None or src not in markets:
        return None
    srcdf = markets[src]
    ref = src if srcdf.attrs.get("kind") == "reference" else run.reference_for(src)
    div, xlabel = time_scale(_t_end(run))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
    if ref is not None and ref != src:
        r = markets[ref]
        ax.step(r["t"] / div, r["price"], where="post", color="black", lw=1.3, label=f"{ref} (reference)")
    ax.plot(srcdf["t"] / div, srcdf["price"], color="C0", lw=1.2, label=f"{src} (source)")
    if len(odf):
        d = odf.sort_values("delivered_t", kind="stable")
        x = np.append(d["delivered_t"].to_numpy(), _t_end(run))
        y = np.append(d["price"].to_numpy(), d["price"].to_numpy()[-1])
        ax.step(x / div, y, where="post", color="C3", lw=1.3, label=f"{oracle} delivered")
        ax.plot(odf["t"] / div, odf["source_price"], ".", color="C3", ms=3, alpha=0.6,
                label=f"{oracle} source read at publication")
    a = odf.attrs
    ax.set_title(f"{run.name}: oracle {oracle} ({a.get('type')}, source {a.get('source')}, "
                 f"poll {a.get('poll', float('nan')):g} s, latency {a.get('latency', float('nan')):g} s)")
    ax.set_ylabel("price")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    cmp = metrics.oracle_vs_source(odf, srcdf["t"], srcdf["price"])
    ax2.plot(cmp["t"] / div, 100 * cmp["deviation"], color="C3", lw=1.1,
             label=f"{oracle} delivered vs {src}")
    if ref is not None and ref != src:
        r = markets[ref]
        rv = metrics.asof(srcdf["t"], r["t"], r["price"])
        ax2.plot(srcdf["t"] / div, 100 * (srcdf["price"].to_numpy() / rv - 1), color="C0", lw=1.1,
                 label=f"{src} vs {ref}")
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_ylabel("deviation (%)")
    ax2.set_xlabel(xlabel)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- lending -----------------------------------------------------------------
def _finite_or_clip(v, cap):
    """(values with +inf replaced by ``cap``, mask of those that were inf)."""
    v = np.asarray(v, dtype=float)
    inf = np.isposinf(v)
    return np.where(inf, cap, v), inf


def _log_ok(*arrays):
    vals = np.concatenate([np.asarray(a, float).ravel() for a in arrays]) if arrays else np.zeros(0)
    vals = vals[np.isfinite(vals)]
    return vals.size > 0 and np.all(vals > 0) and vals.max() / vals.min() > 20


def collateral_multiplier(run):
    """/system: the Collateral Multiplier C/(C−D) and ``leverage_layer_<k>``
    over time (top; +inf — equity gone — drawn as triangles at the top
    edge; log scale when the range is wide), total collateral, debt and bad
    debt (bottom).  None without /system rows."""
    if not run.has("system"):
        return None
    sysdf = run.system()
    if len(sysdf) == 0:
        return None
    ms = metrics.multiplier_series(sysdf)
    div, xlabel = time_scale(_t_end(run))
    x = ms.index.to_numpy() / div
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
    series = [("collateral_multiplier", "system C/(C−D)", dict(color="black", lw=2.0))]
    layers = [c for c in ms.columns if c.startswith("leverage_layer_")]
    for k, c in enumerate(layers):
        if ms[c].notna().any():
            series.append((c, f"layer {c.rsplit('_', 1)[1]}", dict(color=f"C{k}", lw=1.2, ls="--")))
    finite = np.concatenate([ms[c].to_numpy()[np.isfinite(ms[c].to_numpy())] for c, _, _ in series])
    top = (finite.max() if finite.size else 1.0) * 1.15
    for c, label, kw in series:
        y, inf = _finite_or_clip(ms[c], top)
        ax.step(x, np.where(inf, np.nan, y), where="post", label=label, **kw)
        if inf.any():
            ax.plot(x[inf], y[inf], "^", color=kw["color"], ms=5,
                    label=f"{label}: +inf (C ≤ D) at {int(inf.sum())} samples")
    vmax, tmax = metrics.max_collateral_multiplier(sysdf)
    if np.isfinite(vmax):
        ax.plot([tmax / div], [vmax], "o", color="C3", ms=7, zorder=5, label=f"max {vmax:.3g}")
    ax.axhline(1, color="grey", lw=0.8)
    if _log_ok(finite):
        ax.set_yscale("log")
    ax.set_ylabel("collateral multiplier C/(C−D)")
    ax.set_title(f"{run.name}: collateral multiplier (seed {run.seed})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    ax2.step(x, sysdf["total_collateral"], where="post", color="C0", label="total collateral C")
    ax2.step(x, sysdf["total_debt"], where="post", color="C3", label="total debt D")
    ax2.step(x, sysdf["total_collateral"] - sysdf["total_debt"], where="post", color="C2", lw=1,
             ls=":", label="equity C − D")
    if (sysdf["total_bad_debt"] > 0).any():
        ax2.step(x, sysdf["total_bad_debt"], where="post", color="black", label="bad debt (cumulative)")
    ax2.set_ylabel("value (USD)")
    ax2.set_xlabel(xlabel)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def hf_distribution(run, quantiles=metrics.HF_QUANTILES):
    """Health factors over time, one column per protocol in /positions: a
    fan chart of the finite HFs (outer band q05–q95, inner q25–q75, median
    line; log y) with the HF = 1 line (top) and the share of liquidatable
    positions per snapshot with the number of positions (bottom).  None
    without /positions rows."""
    if not run.has("positions"):
        return None
    pos = run.positions(columns=["protocol", "hf", "liquidatable", "collateral_value", "debt_value"])
    if len(pos) == 0:
        return None
    hq = metrics.hf_quantiles(pos, quantiles=quantiles, by_protocol=True)
    protos = [p for p in hq.index.get_level_values("protocol").categories
              if p in set(hq.index.get_level_values("protocol"))]
    div, xlabel = time_scale(_t_end(run))
    qc = [c for c in hq.columns if c.startswith("q")]
    fig, axes = plt.subplots(2, len(protos), figsize=(max(11, 6 * len(protos)), 7.5), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    for j, p in enumerate(protos):
        h = hq.xs(p, level="protocol")
        x = h.index.to_numpy() / div
        ax, ax2 = axes[0, j], axes[1, j]
        lo, hi = qc[0], qc[-1]
        pct = lambda c: c[1:].lstrip("0") or "0"  # noqa: E731  "q05" -> "5"
        ax.fill_between(x, h[lo], h[hi], step="post", color="C0", alpha=0.2,
                        label=f"{pct(lo)}–{pct(hi)} %")
        if len(qc) >= 4:
            ax.fill_between(x, h[qc[1]], h[qc[-2]], step="post", color="C0", alpha=0.35,
                            label=f"{pct(qc[1])}–{pct(qc[-2])} %")
        mid = qc[len(qc) // 2]
        ax.step(x, h[mid], where="post", color="C0", lw=1.6,
                label="median" if pct(mid) == "50" else f"{pct(mid)} %")
        ax.axhline(1.0, color="C3", lw=1.2, ls="--", label="HF = 1")
        vals = h[qc].to_numpy()
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if vals.size:
            ax.set_yscale("log")
            ax.set_ylim(min(vals.min(), 1.0) / 1.15, max(vals.max(), 1.0) * 1.15)
        ptype = run.group_attrs(f"protocols/{p}").get("type") if run.has(f"protocols/{p}") else None
        ax.set_title(f"{run.name}: health factors, {p}" + (f" ({ptype})" if ptype else ""))
        ax.set_ylabel("health factor (finite HFs, log)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="best")
        ax2.step(x, 100 * h["share_liquidatable"], where="post", color="C3", label="liquidatable (%)")
        ax2.set_ylabel("liquidatable (%)", color="C3")
        ax2.set_ylim(0, max(5.0, 105 * float(np.nanmax(h["share_liquidatable"])) if len(h) else 5.0))
        ax3 = ax2.twinx()
        ax3.step(x, h["n_positions"], where="post", color="grey", lw=1, label="positions")
        ax3.set_ylabel("positions", color="grey")
        ax3.set_ylim(0, max(1, h["n_positions"].max()) * 1.1)
        ax2.set_xlabel(xlabel)
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def protocols(run):
    """One row per /protocols/<name>: collateral and debt (with bad debt);
    utilization and borrow rate per borrowable token (pool) or debt per
    collateral type (cdp); receipt exchange rates (pool) or the surplus
    buffer (cdp); positions and liquidatable positions.  None without
    protocols."""
    prots = run.protocols() if run.has("protocols") else {}
    prots = {k: v for k, v in prots.items() if len(v)}
    if not prots:
        return None
    div, xlabel = time_scale(_t_end(run))
    fig, axes = plt.subplots(len(prots), 4, figsize=(17, 3.6 * len(prots)), squeeze=False)
    for i, (name, df) in enumerate(prots.items()):
        x = df["t"].to_numpy() / div
        typ = df.attrs.get("type")
        a0, a1, a2, a3 = axes[i]
        a0.step(x, df["collateral_value"], where="post", color="C0", label="collateral value")
        a0.step(x, df["debt"], where="post", color="C3", label="debt")
        a0.set_title(f"{name} ({typ}): collateral and debt")
        a0.set_ylabel("USD")
        a0.legend(fontsize=8)
        if typ == "pool" or any(c.startswith("utilization_") for c in df.columns):
            for k, c in enumerate(c for c in df.columns if c.startswith("utilization_")):
                tok = c[len("utilization_"):]
                a1.step(x, 100 * df[c], where="post", color=f"C{k}", label=f"utilization {tok}")
                if f"borrow_rate_{tok}" in df:
                    a1.step(x, 100 * df[f"borrow_rate_{tok}"], where="post", color=f"C{k}", ls="--",
                            label=f"borrow APR {tok}")
            a1.set_ylabel("%")
            a1.set_title(f"{name}: utilization and borrow rate")
            for k, c in enumerate(c for c in df.columns if c.startswith("exchange_rate_")):
                a2.step(x, df[c], where="post", color=f"C{k}", label=c)
            a2.set_title(f"{name}: receipt exchange rate")
            a2.set_ylabel("token per receipt")
            a2.ticklabel_format(axis="y", useOffset=False)
        else:
            for k, c in enumerate(c for c in df.columns if c.startswith("debt_")):
                a1.step(x, df[c], where="post", color=f"C{k}", label=c)
            a1.set_title(f"{name}: debt per collateral type")
            a1.set_ylabel("stablecoin")
            a2.step(x, df["reserve"], where="post", color="C2", label="surplus buffer")
            a2.set_title(f"{name}: surplus buffer")
            a2.set_ylabel("stablecoin")
        a3.step(x, df["bad_debt"], where="post", color="black", label="bad debt (cumulative)")
        a3.set_ylabel("bad debt (USD)")
        a3b = a3.twinx()
        a3b.step(x, df["n_liquidatable"], where="post", color="C3", lw=1, label="liquidatable")
        a3b.step(x, df["n_positions"], where="post", color="grey", lw=1, label="positions")
        a3b.set_ylabel("positions")
        a3b.set_ylim(0, max(1, df["n_positions"].max()) * 1.1)
        a3.set_title(f"{name}: bad debt, liquidatable positions")
        h1, l1 = a3.get_legend_handles_labels()
        h2, l2 = a3b.get_legend_handles_labels()
        a3.legend(h1 + h2, l1 + l2, fontsize=8)
        for a in (a0, a1, a2, a3):
            a.grid(alpha=0.3)
            if a is not a3 and a.get_legend_handles_labels()[0]:
                a.legend(fontsize=8)
            a.set_xlabel(xlabel)
    fig.tight_layout()
    return fig


def vaults(run):
    """One row per /vaults/<name>: share price with its drawdown (left),
    leverage against the target band (+inf when NAV ≤ 0, drawn as triangles
    at the top) (middle), NAV, collateral and debt (right).  None without
    vaults."""
    vs = run.vaults() if run.has("vaults") else {}
    vs = {k: v for k, v in vs.items() if len(v)}
    if not vs:
        return None
    div, xlabel = time_scale(_t_end(run))
    fig, axes = plt.subplots(len(vs), 3, figsize=(16, 3.6 * len(vs)), squeeze=False)
    for i, (name, df) in enumerate(vs.items()):
        a = df.attrs
        x = df["t"].to_numpy() / div
        a0, a1, a2 = axes[i]
        a0.step(x, df["share_price"], where="post", color="C0", label="share price")
        a0.axhline(0, color="grey", lw=0.8)
        a0.set_ylabel(f"{a.get('asset', 'asset')} per share")
        a0b = a0.twinx()
        dd = 100 * metrics.share_price_drawdown(df)
        a0b.fill_between(x, 0, dd, step="post", color="C3", alpha=0.15, label="drawdown")
        a0b.set_ylim(0, max(5.0, 1.05 * float(np.nanmax(dd)) if np.isfinite(dd).any() else 5.0))
        a0b.set_ylabel("drawdown (%)", color="C3")
        a0.set_title(f"vault {name}: share price (max drawdown "
                     f"{100 * metrics.max_share_price_drawdown(df):.1f} %)")
        lev = df["leverage"].to_numpy(dtype=float)
        fin = lev[np.isfinite(lev)]
        tgt = a.get("target_leverage")
        band = a.get("band", 0.0) or 0.0
        top = max([fin.max() if fin.size else 1.0] + ([tgt + band] if tgt else [])) * 1.15
        y, inf = _finite_or_clip(lev, top)
        a1.step(x, np.where(inf, np.nan, y), where="post", color="C1", label="leverage")
        if inf.any():
            a1.plot(x[inf], y[inf], "^", color="C1", ms=4, label="+inf (NAV ≤ 0)")
        if tgt:
            a1.axhspan(tgt - band, tgt + band, color="C2", alpha=0.15, label=f"target {tgt:g} ± {band:g}")
            a1.axhline(tgt, color="C2", lw=1)
        a1.set_title(f"vault {name}: leverage (collateral / NAV)")
        a1.set_ylabel("x")
        a2.step(x, df["nav"], where="post", color="black", label="NAV")
        a2.step(x, df["collateral"], where="post", color="C0", label="collateral")
        a2.step(x, df["idle"], where="post", color="C2", lw=0.8, label="idle")
        a2.set_ylabel(a.get("asset", "asset"))
        a2b = a2.twinx()
        a2b.step(x, df["debt"], where="post", color="C3", ls="--", label=f"debt ({a.get('debt', '')})")
        a2b.set_ylabel(f"debt ({a.get('debt', '')})", color="C3")
        a2.set_title(f"vault {name}: NAV, collateral, debt (on {a.get('protocol', '?')})")
        h1, l1 = a2.get_legend_handles_labels()
        h2, l2 = a2b.get_legend_handles_labels()
        a2.legend(h1 + h2, l1 + l2, fontsize=8)
        for ax in (a0, a1):
            ax.legend(fontsize=8, loc="best")
        for ax in (a0, a1, a2):
            ax.grid(alpha=0.3)
            ax.set_xlabel(xlabel)
    fig.tight_layout()
    return fig


# -- liquidations, auctions, blocks, bad debt ---------------------------------
def _table_rows(run, group):
    return run.has(group) and len(run.h5[f"{group}/t" if f"{group}/t" in run.h5 else
                                         f"{group}/t_start"]) > 0


def liquidations_on_price(run):
    """Liquidations as markers on the price path of their collateral: the
    reference (black steps), the venues of that asset (lines) and the oracles
    reading them (dashed, at delivery); each liquidation a dot at (t,
    ``oracle_price``) — the protocol's price, on the oracle path — with area
    proportional to its value (seized × oracle price) and colour by cascade
    generation (colour bar).  One panel per collateral token.  None without
    liquidations."""
    if not _table_rows(run, "events/liquidations"):
        return None
    liq = run.table("events/liquidations")
    toks = [str(c) for c in pd.unique(liq["collateral"].astype(object))]
    markets = run.markets()
    oracles = run.oracles()
    div, xlabel = time_scale(_t_end(run))
    fig, axes = plt.subplots(len(toks), 1, figsize=(11, 4.8 * len(toks)), squeeze=False)
    val = metrics.liquidation_value(liq)
    vmax = float(np.nanmax(val)) if np.isfinite(val).any() and np.nanmax(val) > 0 else 1.0
    gmax = max(1, int(liq["generation"].max()))
    cmap = plt.get_cmap("viridis")
    for ax, tok in zip(axes[:, 0], toks):
        names = [n for n in markets if _asset_of(run, n) == tok]
        for n in names:
            df = markets[n]
            if df.attrs.get("kind") == "reference":
                ax.step(df["t"] / div, df["price"], where="post", color="black", lw=1.3,
                        label=f"{n} (reference)", zorder=2)
            else:
                ax.plot(df["t"] / div, df["price"], lw=1.1, color="C0", label=f"{n} (venue)", zorder=3)
        for k, (o, odf) in enumerate(oracles.items()):
            if run.oracle_source_market(o) in names and len(odf):
                d = odf.sort_values("delivered_t", kind="stable")
                x = np.append(d["delivered_t"].to_numpy(), _t_end(run))
                y = np.append(d["price"].to_numpy(), d["price"].to_numpy()[-1])
                ax.step(x / div, y, where="post", ls="--", lw=1.0, color=f"C{k + 1}",
                        label=f"{o} (oracle, delivered)", zorder=3)
        sel = np.asarray(liq["collateral"].astype(object) == tok)
        sub = liq[sel]
        v = val[sel]
        size = 8 + 300 * np.sqrt(np.clip(v, 0, None) / vmax)
        sc = ax.scatter(sub["t"] / div, sub["oracle_price"], s=size, c=sub["generation"],
                        cmap=cmap, vmin=0, vmax=gmax, alpha=0.75, edgecolors="black", lw=0.4,
                        zorder=5, label=f"liquidations ({len(sub)}; area ∝ value)")
        wo = np.asarray(sub["collateral_seized"], float) == 0
        if wo.any():
            ax.plot(sub["t"][wo] / div, sub["oracle_price"][wo], "x", color="C3", ms=7, zorder=6,
                    label=f"write-offs ({int(wo.sum())})")
        cb = fig.colorbar(sc, ax=ax, pad=0.01)
        cb.set_label("cascade generation")
        ax.set_title(f"{run.name}: liquidations of {tok} on its price path "
                     f"(cascade depth {int(sub['generation'].max())}, seed {run.seed})")
        ax.set_ylabel(f"price of {tok}")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def liquidations_by_generation(run, max_columns=12):
    """Cascade generations: liquidations and their value per generation
    (top, bars), and the value liquidated per time bin stacked by generation
    (bottom; generations beyond ``max_columns`` − 1 are summed into the last
    band).  None without liquidations."""
    if not _table_rows(run, "events/liquidations"):
        return None
    liq = run.table("events/liquidations")
    bg = metrics.liquidations_by_generation(liq)
    end = _t_end(run)
    div, xlabel = time_scale(end)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 7.5))
    ax.bar(bg.index, bg["value"], color="C0", alpha=0.8, label="value (seized × oracle price)")
    ax.set_ylabel("value liquidated (USD)")
    axb = ax.twinx()
    axb.plot(bg.index, bg["n"], "o", color="C3", ms=4, label="liquidations")
    axb.set_ylabel("liquidations", color="C3")
    axb.set_ylim(0, max(1, bg["n"].max()) * 1.15)
    ax.set_xlabel("cascade generation")
    ax.set_title(f"{run.name}: liquidations by cascade generation ({len(liq)} liquidations, "
                 f"depth {metrics.cascade_depth(liq)})")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = axb.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    gmax = int(liq["generation"].max())
    cap = max_columns - 1 if gmax >= max_columns else None
    b = _nice_bin(end)
    tab = metrics.liquidations_over_time(liq, b, value="value", t_end=end, max_generation=cap)
    cmap = plt.get_cmap("viridis")
    bottom = np.zeros(len(tab))
    for g in tab.columns:
        lab = f"gen {g}" + ("+" if cap is not None and g == cap else "")
        ax2.bar(tab.index / div, tab[g], width=b / div, align="edge", bottom=bottom,
                color=cmap(g / max(1, tab.columns.max())), label=lab, lw=0)
        bottom += tab[g].to_numpy()
    ax2.set_ylabel(f"value liquidated per {b:g} s")
    ax2.set_xlabel(xlabel)
    ax2.grid(alpha=0.3, axis="y")
    ax2.legend(fontsize=7, ncol=2, title="generation", title_fontsize=7)
    fig.tight_layout()
    return fig


def auctions(run):
    """Closed auctions: raised against the lot's value at the kick (left;
    log-log when wide; the diagonal raised = value, each auction's tab as a
    grey tick; zero-bid auctions in red), and raised / tab against the kick
    time with the duration as marker size (right).  None without
    auctions."""
    if not _table_rows(run, "events/auctions"):
        return None
    au = run.table("events/auctions")
    st = metrics.auction_stats(au)
    zb = np.asarray(au["zero_bid"]).astype(int) == 1
    val = au["collateral_value"].to_numpy(float)
    raised = au["raised"].to_numpy(float)
    tab = au["tab"].to_numpy(float)
    div, xlabel = time_scale(_t_end(run))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    ax.plot(val, tab, "_", color="grey", ms=8, label="tab (debt × chop)")
    ax.scatter(val[~zb], raised[~zb], s=18, color="C0", alpha=0.8, label=f"raised ({int((~zb).sum())})")
    ax.scatter(val[zb], np.maximum(raised[zb], 1e-9), s=30, color="C3", marker="v",
               label=f"zero bid ({int(zb.sum())}, raised < 1 % of value)")
    lim = [max(1e-9, np.nanmin(val[val > 0])) if (val > 0).any() else 1, np.nanmax(val) if len(val) else 1]
    ax.plot(lim, lim, color="black", lw=0.8, ls="--", label="raised = lot value")
    if _log_ok(val[val > 0]):
        ax.set_xscale("log")
        if (raised > 0).all():
            ax.set_yscale("log")
    ax.set_xlabel("lot value at the kick (USD, oracle price)")
    ax.set_ylabel("raised (debt token)")
    ax.set_title(f"{run.name}: {st['n']} auctions, zero-bid share {100 * st['zero_bid_share']:.1f} %, "
                 f"raised/tab {st['raised_over_tab']:.3f}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    dur = au["t_end"].to_numpy(float) - au["t_start"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rt = raised / tab
    size = 10 + 120 * dur / max(1.0, float(np.nanmax(dur)))
    ax2.scatter(au["t_start"] / div, rt, s=size, c=np.where(zb, "C3", "C0"), alpha=0.7)
    ax2.axhline(1.0, color="black", lw=0.8, ls="--")
    ax2.set_xlabel("kick " + xlabel)
    ax2.set_ylabel("raised / tab")
    ax2.set_title(f"raised / tab by kick time (marker area ∝ duration; mean "
                  f"{st['duration_mean'] / 60:.1f} min)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def blocks(run):
    """The chain: base fee per block (top) and agent transactions included
    and still pending (bottom).  None without ``/events/blocks`` or when
    nothing happened there (no agent transaction, constant base fee)."""
    if not _table_rows(run, "events/blocks"):
        return None
    b = run.table("events/blocks")
    if not metrics.blocks_active(b):
        return None
    div, xlabel = time_scale(_t_end(run))
    x = b["t"].to_numpy(float) / div
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
    ax.step(x, b["base_fee"], where="post", color="C0", lw=1.0, label="base fee")
    if "min_tip_included" in b:
        ax.plot(x, b["base_fee"] + b["min_tip_included"], ".", color="C1", ms=1.5, alpha=0.5,
                label="base fee + smallest tip included")
    ax.set_ylabel("gwei per gas")
    ax.set_title(f"{run.name}: blocks ({len(b)}; max base fee {float(b['base_fee'].max()):.4g} gwei)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax2.step(x, b["n_pending"], where="post", color="C3", label="agent txs pending")
    if "n_agent_tx" in b:
        ax2.step(x, b["n_agent_tx"], where="post", color="C2", label="agent txs included")
    ax2.set_ylabel("transactions")
    ax2.set_xlabel(xlabel)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def bad_debt(run):
    """Bad debt over time: the cumulative write-offs per protocol at their
    exact times (``/events/liquidations`` ``bad_debt``, steps) and the sampled
    ``/protocols/<name>`` ``bad_debt`` (dots).  None when no bad debt was
    written off."""
    liq = run.table("events/liquidations") if run.has("events/liquidations") else None
    prots = {k: v for k, v in run.protocols().items() if len(v)} if run.has("protocols") else {}
    ev = metrics.bad_debt_events_over_time(liq) if liq is not None and len(liq) else None
    sampled = any((df["bad_debt"] > 0).any() for df in prots.values())
    if (ev is None or len(ev) == 0) and not sampled:
        return None
    end = _t_end(run)
    div, xlabel = time_scale(end)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for k, (name, df) in enumerate(prots.items()):
        ax.plot(df["t"] / div, df["bad_debt"], ".", ms=3, color=f"C{k}", alpha=0.7,
                label=f"{name} (/protocols, sampled)")
        if ev is not None and name in ev:
            x = np.concatenate(([0.0], ev.index.to_numpy(), [end]))
            y = np.concatenate(([0.0], ev[name].to_numpy(), [ev[name].to_numpy()[-1]]))
            ax.step(x / div, y, where="post", color=f"C{k}", lw=1.5, label=f"{name} (write-offs)")
    if ev is not None and len(prots) > 1:
        x = np.concatenate(([0.0], ev.index.to_numpy(), [end]))
        y = np.concatenate(([0.0], ev["total"].to_numpy(), [ev["total"].to_numpy()[-1]]))
        ax.step(x / div, y, where="post", color="black", lw=1.8, label="total")
    ax.set_ylabel("bad debt written off (USD)")
    ax.set_xlabel(xlabel)
    ax.set_title(f"{run.name}: bad debt over time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def branches(parent, children, group, column, labels=None):
    """One column of one table over time for a run and its branches
    (``spiral resume --set``): the parent's whole series, and each branch
    joined to the parent's past (``load.continued``), with a dotted line at
    each branch point.  ``parent`` and ``children`` are paths or ``Run``s;
    ``labels`` default to each branch's ``--set`` overrides."""
    from .load import Run, continued
    p = parent if isinstance(parent, Run) else Run(parent)
    runs = [c if isinstance(c, Run) else Run(c) for c in children]
    try:
        base = p.table(group, columns=None)
        if column not in base.columns:
            raise ValueError(f"/{group.strip('/')} has no column {column!r} "
                             f"(columns: {', '.join(base.columns)})")
        div, xlabel = time_scale(_t_end(p))
        unit = {86400.0: " d", 3600.0: " h", 60.0: " min"}.get(div, " s")
        fig, ax = plt.subplots(figsize=(11, 4.5))
        ax.plot(base["t"] / div, base[column], color="black", lw=1.6, label=f"{p.name} (parent)")
        for k, c in enumerate(runs):
            df = continued(p, c, group)
            t0 = df.attrs["branch_t"]
            lab = (labels[k] if labels and k < len(labels)
                   else "; ".join(c.overrides) or "no override")
            after = df["t"] > t0
            ax.plot(df["t"][after] / div, df[column][after], lw=1.4, color=f"C{k}",
                    label=f"branch at {t0 / div:g}{unit}: {lab}")
            ax.axvline(t0 / div, color=f"C{k}", ls=":", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(column)
        ax.set_title(f"{p.name}: /{group.strip('/')} {column}, parent and branches")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig
    finally:
        if p is not parent:
            p.close()
        for c, orig in zip(runs, children):
            if c is not orig:
                c.close()
