"""Figures of one run (matplotlib, Agg backend: no display needed).

Every function takes a ``Run`` and returns a ``matplotlib.figure.Figure``
(or None when the run has nothing to draw); ``save(fig, path)`` writes a PNG.

- ``price_paths``: per base asset, the reference price(s), the venues' prices,
  the oracles' delivered prices (step lines that change at ``delivered_t``)
  and every trade as a marker at (t, price_after) coloured by cause.
- ``trades_by_cause``: trade count and quote volume per time bin, stacked by cause.
- ``oracle_vs_venue``: one oracle's delivered price against its source venue and
  the reference, with the deviations in percent underneath.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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
