"""A report of one run: PNG figures plus report.md and a self-contained
report.html (figures embedded as base64) in one directory.

    from spiral_analysis.report import write_report
    md_path, html_path = write_report("/tmp/arb.h5", "/tmp/arb_report")
"""
import base64
import html
import math
import os

import numpy as np

from . import metrics, plots
from .load import Run

UNDER_WATER_THRESHOLDS = (0.01, 0.05, 0.10)


def _fmt(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and (abs(v) >= 1e12 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 1e3 else f"{v:,.1f}"
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def _fmt_count(v):
    """Counts stored as float64 attributes print as integers."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return _fmt(v)


def _hours(s):
    return f"{s / 3600:.2f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def build(run, out_dir):
    """Compute the report's blocks and write its figures into ``out_dir``.

    Returns a list of blocks: ("h1"|"h2"|"p", text), ("table", header, rows),
    ("img", filename, caption).
    """
    B = []
    B.append(("h1", f"spiral run report: {run.name}"))
    B.append(("p", f"File `{os.path.abspath(run.path)}`."))
    keys = ["name", "scenario", "seed", "status", "software", "created_utc", "horizon",
            "t_end", "n_events", "wall_seconds", "command_line"]
    B.append(("table", ["attribute", "value"],
              [[k, _fmt(run.attrs[k])] for k in keys if k in run.attrs]))

    # markets
    markets = run.markets()
    rows = []
    for n, df in markets.items():
        p = df["price"].to_numpy(dtype=float)
        ok = ~np.isnan(p)
        rows.append([n, df.attrs.get("kind"), str(len(df)),
                     _fmt(float(p[ok][0])) if ok.any() else "–",
                     _fmt(float(np.nanmin(p))) if ok.any() else "–",
                     _fmt(float(p[ok][-1])) if ok.any() else "–",
                     _fmt(metrics.max_drawdown(p))])
    if rows:
        B.append(("h2", "Markets"))
        B.append(("p", "Prices and drawdown over the recorded samples "
                       "(`/summary` `max_drawdown_*` is over every update and can be larger)."))
        B.append(("table", ["market", "kind", "rows", "first price", "min price", "last price",
                            "max drawdown (samples)"], rows))

    # venue vs reference
    rows = []
    for v, df in run.venues().items():
        ref = run.reference_for(v)
        if ref is None:
            continue
        r = markets[ref]
        row = [v, ref]
        for th in UNDER_WATER_THRESHOLDS:
            uw = metrics.time_under_water(df["t"], df["price"], r["t"], r["price"], th,
                                          t_end=run.t_end)
            row.append(f"{_hours(uw.total)} ({100 * uw.fraction:.1f} %), longest {_hours(uw.longest)}")
        rows.append(row)
    if rows:
        B.append(("h2", "Venues against their reference"))
        B.append(("p", "Time under water: time the venue price was more than x away from the "
                       "reference, |venue/reference − 1| > x (both held constant between samples)."))
        B.append(("table", ["venue", "reference"] + [f"> {100 * th:g} %" for th in UNDER_WATER_THRESHOLDS],
                  rows))

    # oracles
    oracles = run.oracles()
    summ = run.summary()
    rows = []
    for o, odf in oracles.items():
        st = metrics.oracle_publication_stats(odf)
        src = run.oracle_source_market(o)
        if src in markets and len(odf):
            cmp = metrics.oracle_vs_source(odf, markets[src]["t"], markets[src]["price"])
            dev = float(np.nanmax(np.abs(cmp["deviation"]))) if cmp["deviation"].notna().any() else float("nan")
            age = float(np.nanmax(cmp["age"])) if cmp["age"].notna().any() else float("nan")
        else:
            dev = age = float("nan")
        rows.append([o, str(odf.attrs.get("type")), str(odf.attrs.get("source")), str(st["n_updates"]),
                     _fmt(st["latency"]), _fmt(st["max_gap"]), _fmt(st["max_abs_offset"]),
                     _fmt(dev), _fmt(summ.get(f"max_deviation_{o}", float("nan"))), _fmt(age)])
    if rows:
        B.append(("h2", "Oracles"))
        B.append(("p", "latency = delivered_t − t; max gap = longest time between publications; "
                       "offset at publication = |price/source_price − 1|; deviation = |delivered/source − 1| "
                       "at the source market's samples (the `/summary` value is measured at every poll); "
                       "age = time since the delivered price was published (all in s or fractions)."))
        B.append(("table", ["oracle", "type", "source", "updates", "latency", "max gap",
                            "max offset at publication", "max deviation (samples)",
                            "max_deviation (summary)", "max age"], rows))

    # trades
    trades = run.trades()
    B.append(("h2", "Trades by cause"))
    if len(trades):
        vb = metrics.volume_by_cause(trades, by=("venue", "cause"))
        B.append(("table", ["venue", "cause", "fills", "quote volume", "base volume"],
                  [[str(i[0]), str(i[1]), str(int(r.n_trades)), _fmt(float(r.quote_volume)),
                    _fmt(float(r.base_volume))] for i, r in vb.iterrows()]))
    else:
        B.append(("p", "No trades in this run."))

    B += _lending_blocks(run, summ)
    B += _liquidation_blocks(run, summ)

    # figures
    B.append(("h2", "Figures"))
    figs = [("price_paths.png", lambda: plots.price_paths(run),
             "Price paths: references (black steps), venues, oracles (dashed, at delivery), "
             "trades coloured by cause.")]
    figs.append(("trades_by_cause.png", lambda: plots.trades_by_cause(run),
                 "Trades per time bin, stacked by cause: count and quote volume."))
    for o in oracles:
        figs.append((f"oracle_{o}.png", (lambda o=o: plots.oracle_vs_venue(run, o)),
                     f"Oracle {o}: delivered price vs its source and the reference; deviations in %."))
    figs += [
        ("collateral_multiplier.png", lambda: plots.collateral_multiplier(run),
         "Collateral Multiplier C/(C−D) of the system and per valuation-graph layer "
         "(+inf — equity gone — as triangles); total collateral, debt and bad debt below."),
        ("hf_distribution.png", lambda: plots.hf_distribution(run),
         "Health factors per position snapshot: 5–95 % and 25–75 % bands and median of the "
         "finite HFs (log scale), HF = 1 dashed; share of liquidatable positions below."),
        ("protocols.png", lambda: plots.protocols(run),
         "Lending protocols: collateral and debt; utilization and borrow APR (pool) or debt "
         "per collateral type (cdp); receipt exchange rate (pool) or surplus (cdp); bad debt "
         "and liquidatable positions."),
        ("vaults.png", lambda: plots.vaults(run),
         "Vaults: share price and its drawdown; leverage against the target band; NAV, "
         "collateral and debt."),
        ("liquidations_price.png", lambda: plots.liquidations_on_price(run),
         "Liquidations on their collateral's price path: each a dot at (t, the protocol's "
         "oracle price), area ∝ value (seized × oracle price), colour = cascade generation."),
        ("liquidations_by_generation.png", lambda: plots.liquidations_by_generation(run),
         "Liquidations and value per cascade generation; value liquidated per time bin stacked "
         "by generation."),
        ("auctions.png", lambda: plots.auctions(run),
         "Auctions: raised vs the lot's value at the kick (zero bids in red, tab as grey "
         "ticks); raised / tab by kick time (area ∝ duration)."),
        ("blocks.png", lambda: plots.blocks(run),
         "Blocks: base fee per gas; agent transactions included and pending."),
        ("bad_debt.png", lambda: plots.bad_debt(run),
         "Bad debt written off over time, per protocol: write-off events (steps) and the "
         "sampled /protocols bad_debt (dots)."),
    ]
    for fname, make, caption in figs:
        fig = make()
        if fig is None:
            continue
        plots.save(fig, os.path.join(out_dir, fname))
        B.append(("img", fname, caption))

    if summ:
        B.append(("h2", "/summary"))
        B.append(("table", ["metric", "value"], [[k, _fmt(v)] for k, v in summ.items()]))
    return B


def _tfmt(t):
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return "–"
    return f"{float(t) / 86400:.2f} d" if float(t) >= 3 * 86400 else _hours(float(t))


def _lending_blocks(run, summ):
    """Blocks for /protocols, /system, /positions, /vaults and /exposure
    (nothing for a run without them)."""
    B = []
    prots = {k: v for k, v in run.protocols().items() if len(v)} if run.has("protocols") else {}
    if prots:
        B.append(("h2", "Lending protocols"))
        B.append(("p", "Aggregates of each `/protocols/<name>` table at the first sample, their "
                       "minimum and maximum (with the time), and at the last sample; values at the "
                       "protocol's oracle prices (USD)."))
        for name, df in prots.items():
            ag = metrics.aggregate_extremes(df)
            rows = [[c, _fmt(r.start), f"{_fmt(r['min'])} ({_tfmt(r.t_min)})",
                     f"{_fmt(r['max'])} ({_tfmt(r.t_max)})", _fmt(r.end)] for c, r in ag.iterrows()]
            for k in ("bad_debt", "socialized", "n_positions", "liquidatable", "max_liquidatable"):
                if f"{k}_{name}" in summ:
                    rows.append([f"`/summary` {k}_{name}", "", "", "", _fmt(summ[f"{k}_{name}"])])
            B.append(("p", f"**{name}** ({df.attrs.get('type')}, {len(df)} samples)"))
            B.append(("table", ["column", "start", "min (at)", "max (at)", "end"], rows))
        bd = metrics.bad_debt_over_time(prots, run.system() if run.has("system") else None)
        if len(bd):
            last = bd.iloc[-1]
            B.append(("p", "Bad debt written off by the end: " + ", ".join(
                f"{c} {_fmt(float(last[c]))}" for c in bd.columns) + "."))

    if run.has("system") and len(run.h5["system/t"]):
        sysdf = run.system()
        ms = metrics.multiplier_series(sysdf)
        B.append(("h2", "System leverage"))
        vmax, tmax = metrics.max_collateral_multiplier(sysdf)
        B.append(("p", f"Collateral Multiplier C/(C−D) over {len(sysdf)} `/system` samples: max "
                       f"{_fmt(vmax)} at {_tfmt(tmax)} (`/summary` max_collateral_multiplier "
                       f"{_fmt(summ.get('max_collateral_multiplier', float('nan')))}). "
                       "+inf: collateral ≤ debt."))
        rows = []
        for c in ["collateral_multiplier"] + [c for c in ms.columns if c.startswith("leverage_layer_")]:
            v = ms[c].to_numpy()
            ok = ~np.isnan(v)
            if not ok.any():
                rows.append([c, "–", "–", "–", "no position"])
                continue
            i = int(np.nanargmax(v))
            rows.append([c, _fmt(float(v[ok][0])), _fmt(float(v[i])), _tfmt(float(ms.index[i])),
                         _fmt(float(v[ok][-1]))])
        for c in ("total_collateral", "total_debt", "total_bad_debt"):
            v = sysdf[c].to_numpy(dtype=float)
            i = int(np.nanargmax(v)) if len(v) else 0
            rows.append([c, _fmt(float(v[0])), _fmt(float(v[i])), _tfmt(float(sysdf["t"].iloc[i])),
                         _fmt(float(v[-1]))])
        B.append(("table", ["series", "start", "max", "at", "end"], rows))

    if run.has("positions") and len(run.h5["positions/t"]):
        pos = run.positions(columns=["protocol", "hf", "liquidatable", "collateral_value",
                                     "debt_value"])
        hq = metrics.hf_quantiles(pos, by_protocol=True)
        qc = [c for c in hq.columns if c.startswith("q")]
        B.append(("h2", "Health factors"))
        B.append(("p", f"`/positions`: {len(pos)} rows, "
                       f"{hq.index.get_level_values('t').nunique()} snapshots. Quantiles over the "
                       "positions with debt (finite HF) at the first and last snapshot of each "
                       "protocol; liquidatable = HF < 1."))
        rows = []
        for which in ("first", "last"):
            for (p, t), r in metrics.hf_at(hq, which).iterrows():
                rows.append([str(p), which, _tfmt(t), str(int(r.n_positions)), str(int(r.n_debt)),
                             f"{int(r.n_liquidatable)} ({100 * r.share_liquidatable:.1f} %)",
                             _fmt(float(r.debt_value))] + [_fmt(float(r[c])) for c in qc])
        rows.sort(key=lambda r: r[0])
        B.append(("table", ["protocol", "snapshot", "t", "positions", "with debt", "liquidatable",
                            "debt"] + [f"HF {c[1:].lstrip('0')} %" for c in qc], rows))
        worst = hq["share_liquidatable"].groupby(level="protocol", observed=True).max()
        B.append(("p", "Largest share liquidatable at a snapshot: " + ", ".join(
            f"{p} {100 * v:.1f} %" for p, v in worst.items()) + "."))

    vs = {k: v for k, v in run.vaults().items() if len(v)} if run.has("vaults") else {}
    if vs:
        B.append(("h2", "Vaults"))
        B.append(("p", "Share price in asset per share (NAV / shares, at the protocol's oracle "
                       "prices); drawdown = 1 − price / running peak over the samples (above 100 % "
                       "once NAV < 0); leverage = collateral / NAV (+inf when NAV ≤ 0)."))
        rows = []
        for name, df in vs.items():
            sp = df["share_price"].to_numpy(dtype=float)
            lev = df["leverage"].to_numpy(dtype=float)
            rows.append([name, str(df.attrs.get("asset")), str(df.attrs.get("protocol")),
                         _fmt(df.attrs.get("target_leverage", float("nan"))),
                         _fmt(float(sp[0])), _fmt(float(np.nanmin(sp))), _fmt(float(sp[-1])),
                         _fmt(metrics.max_share_price_drawdown(df)),
                         _fmt(summ.get(f"min_share_price_{name}", float("nan"))),
                         _fmt(float(lev[0])), _fmt(float(np.nanmax(lev))), _fmt(float(lev[-1])),
                         _fmt(float(df["nav"].iloc[-1]))])
        B.append(("table", ["vault", "asset", "protocol", "target", "share price start", "min", "end",
                            "max drawdown", "min_share_price (summary)", "leverage start", "max",
                            "end", "NAV end"], rows))

    if run.has("exposure") and len(run.h5["exposure/t"]):
        ex = run.exposure()
        tl = float(ex["t"].iloc[-1])
        last = ex[ex["t"] == tl]
        B.append(("h2", "Exposure"))
        B.append(("p", f"Issued tokens posted as collateral at the last `/exposure` sample "
                       f"({_tfmt(tl)}); {len(ex)} rows in all."))
        B.append(("table", ["holder", "token", "issuer", "value"],
                  [[str(r.holder), str(r.token), str(r.issuer_name), _fmt(float(r.value))]
                   for r in last.itertuples()]))
    return B


def _liquidation_blocks(run, summ):
    """Blocks for /events/liquidations, /events/auctions, keepers, drawdowns
    and /events/blocks (nothing for a run without them)."""
    B = []
    h = run.h5
    # drawdowns of every price series
    dd = metrics.price_drawdowns(run)
    if len(dd):
        B.append(("h2", "Drawdowns"))
        B.append(("p", "Max drawdown 1 − price / running peak over the samples (markets) or the "
                       "publications (oracles), against the `/summary` `max_drawdown_*` (every "
                       "update) where there is one."))
        B.append(("table", ["series", "kind", "max drawdown", "summary", "min price"],
                  [[n, str(r.kind), _fmt(float(r.max_drawdown)), _fmt(float(r.summary)),
                    _fmt(float(r.min_price))] for n, r in dd.iterrows()]))
    uw = metrics.under_water_table(run, UNDER_WATER_THRESHOLDS, kinds=("oracle",)) \
        if run.references() and run.oracles() else None
    if uw is not None and len(uw[uw["kind"] == "oracle"]):
        B.append(("p", "Oracles' delivered price against the reference of their asset "
                       "(time under water, |delivered/reference − 1| > x):"))
        rows = []
        for (o, r), g in uw[uw["kind"] == "oracle"].groupby(["series", "reference"], sort=False):
            rows.append([o, r] + [f"{_hours(x.total)} ({100 * x.fraction:.1f} %)"
                                  for x in g.itertuples()])
        ths = uw["threshold"].unique()
        B.append(("table", ["oracle", "reference"] + [f"> {100 * t:g} %" for t in ths], rows))

    if "events/liquidations" in h and len(h["events/liquidations/t"]):
        liq = run.table("events/liquidations")
        B.append(("h2", "Liquidations"))
        B.append(("p", f"{len(liq)} rows of `/events/liquidations`. value = Σ collateral_seized × "
                       "oracle_price (USD); exec discount = 1 − Σ seized·exec_price / Σ "
                       "seized·oracle_price; bad debt = Σ written off. `/summary`: n_liquidations "
                       f"{_fmt_count(summ.get('n_liquidations', float('nan')))}, liquidated_value (Σ debt "
                       f"repaid × its price) {_fmt(summ.get('liquidated_value', float('nan')))}, "
                       f"bad_debt_total {_fmt(summ.get('bad_debt_total', float('nan')))}, "
                       f"cascade_depth {_fmt_count(summ.get('cascade_depth', float('nan')))}."))
        for by in ("protocol", "mechanism"):
            ls = metrics.liquidation_summary(liq, by=by)
            B.append(("table", [by, "liquidations", "collateral seized", "value", "debt repaid",
                                "bad debt", "exec discount", "max generation"],
                      [[str(k), str(int(r.n)), _fmt(float(r.collateral_seized)), _fmt(float(r.value)),
                        _fmt(float(r.debt_repaid)), _fmt(float(r.bad_debt)),
                        _fmt(float(r.exec_discount)), str(int(r.max_generation))]
                       for k, r in ls.iterrows()]))
        bg = metrics.liquidations_by_generation(liq)
        B.append(("p", f"Cascade: depth {metrics.cascade_depth(liq)} (highest generation); "
                       f"generation 0 = made liquidatable by an exogenous move, g + 1 = by an "
                       f"oracle that read a market moved by generation-g sales."))
        shown = bg if len(bg) <= 15 else bg.iloc[list(range(10)) + list(range(len(bg) - 3, len(bg)))]
        B.append(("table", ["generation", "liquidations", "value", "debt repaid", "bad debt",
                            "first", "last"],
                  [[str(g), str(int(r.n)), _fmt(float(r.value)), _fmt(float(r.debt_repaid)),
                    _fmt(float(r.bad_debt)), _tfmt(r.t_first), _tfmt(r.t_last)]
                   for g, r in shown.iterrows()]))
        if len(shown) < len(bg):
            B.append(("p", f"({len(bg) - len(shown)} generations not shown.)"))
    if "events/trades" in h and len(h["events/trades/t"]):
        lt = metrics.liquidation_trade_losses(run.trades(), metrics.run_references_by_venue(run))
        if len(lt):
            tot = float(lt["loss"].sum())
            rv = float(lt["reference_value"].sum())
            B.append(("h2", "Liquidation sales against the reference"))
            B.append(("p", "Losses of the liquidation sales (`/events/trades` cause liquidation): "
                           "Σ (reference price at the trade × amount − proceeds), the reference "
                           "taken at its last sample at or before the trade (exact with "
                           "`record_every_update: true`)."))
            rows = []
            for v, g in lt.groupby("venue", sort=False):
                rows.append([str(v), str(len(g)), _fmt(float(g["amount"].sum())),
                             _fmt(float(g["proceeds"].sum())), _fmt(float(g["reference_value"].sum())),
                             _fmt(float(g["loss"].sum())),
                             _fmt(float(g["loss"].sum() / g["reference_value"].sum()))
                             if g["reference_value"].sum() > 0 else "–"])
            rows.append(["all", str(len(lt)), _fmt(float(lt["amount"].sum())),
                         _fmt(float(lt["proceeds"].sum())), _fmt(rv), _fmt(tot),
                         _fmt(tot / rv) if rv > 0 else "–"])
            B.append(("table", ["venue", "sales", "amount sold", "proceeds", "reference value",
                                "loss", "loss / reference value"], rows))
    if "events/auctions" in h and len(h["events/auctions/t_start"]):
        st = metrics.auction_stats(run.table("events/auctions"))
        B.append(("h2", "Auctions"))
        B.append(("p", "Closed auctions (`/events/auctions`); zero bid = raised below 1 % of the "
                       "lot's value; recovery = raised / lot value at the kick."))
        B.append(("table", ["auctions", "zero bids", "zero-bid share", "raised", "tab",
                            "raised / tab", "mean raised / tab", "lot value", "recovery",
                            "duration mean", "median", "max", "bids per auction"],
                  [[str(st["n"]), str(st["n_zero_bid"]), f"{100 * st['zero_bid_share']:.1f} %",
                    _fmt(st["raised"]), _fmt(st["tab"]), _fmt(st["raised_over_tab"]),
                    _fmt(st["mean_raised_over_tab"]), _fmt(st["lot_value"]), _fmt(st["recovery"]),
                    _hours(st["duration_mean"]), _hours(st["duration_median"]),
                    _hours(st["duration_max"]), _fmt(st["mean_bids"])]]))
    kp = metrics.keeper_names(summ)
    if kp:
        B.append(("h2", "Liquidators"))
        cols = ["profit", "gas_spent", "repaid", "n_liquidations", "n_barks", "n_takes", "n_bids",
                "n_wins", "n_tx", "n_reverted", "n_dropped"]
        B.append(("table", ["keeper"] + cols,
                  [[k] + [_fmt_count(summ.get(f"{c}_{k}", float("nan"))) for c in cols]
                   for k in kp]))
    if "events/blocks" in h and len(h["events/blocks/t"]):
        b = run.table("events/blocks")
        bf = b["base_fee"].to_numpy(float)
        B.append(("h2", "Blocks"))
        B.append(("p", f"{len(b)} blocks; base fee min {_fmt(float(bf.min()))}, median "
                       f"{_fmt(float(np.median(bf)))}, max {_fmt(float(bf.max()))} gwei; agent "
                       f"transactions included {int(b['n_agent_tx'].sum()) if 'n_agent_tx' in b else 0}, "
                       f"most pending at once {int(b['n_pending'].max())}; `/summary` n_dropped_tx "
                       f"{_fmt_count(summ.get('n_dropped_tx', float('nan')))}, mean_inclusion_delay "
                       f"{_fmt(summ.get('mean_inclusion_delay', float('nan')))} s."))
    return B


def to_markdown(blocks):
    out = []
    for b in blocks:
        if b[0] == "h1":
            out.append(f"# {b[1]}\n")
        elif b[0] == "h2":
            out.append(f"## {b[1]}\n")
        elif b[0] == "p":
            out.append(b[1] + "\n")
        elif b[0] == "table":
            esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
            out.append("| " + " | ".join(esc(h) for h in b[1]) + " |")
            out.append("|" + "---|" * len(b[1]))
            out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in b[2]]
            out.append("")
        elif b[0] == "img":
            out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*\n")
    return "\n".join(out) + "\n"


def _inline(text):
    """Escape text; `code` spans become <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks, out_dir):
    title = next((b[1] for b in blocks if b[0] == "h1"), "spiral run report")
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#eee}"
           "img{max-width:100%;border:1px solid #ddd}figcaption{font-style:italic;color:#555}"
           "code{background:#f4f4f4}</style></head><body>"]
    for b in blocks:
        if b[0] in ("h1", "h2"):
            out.append(f"<{b[0]}>{_inline(b[1])}</{b[0]}>")
        elif b[0] == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            out.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1]) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                    for row in b[2]]
            out.append("</table>")
        elif b[0] == "img":
            with open(os.path.join(out_dir, b[1]), "rb") as fh:
                data = base64.b64encode(fh.read()).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(path, out_dir=None, allow_incomplete=False):
    """Write the PNGs, report.md and report.html of the run at ``path`` into
    ``out_dir`` (default: ``<run file without .h5>_report`` beside it).
    Returns (report.md path, report.html path)."""
    with Run(path, allow_incomplete=allow_incomplete) as run:
        if out_dir is None:
            out_dir = os.path.splitext(os.path.abspath(path))[0] + "_report"
        os.makedirs(out_dir, exist_ok=True)
        blocks = build(run, out_dir)
    md = os.path.join(out_dir, "report.md")
    with open(md, "w", encoding="utf-8") as fh:
        fh.write(to_markdown(blocks))
    ht = os.path.join(out_dir, "report.html")
    with open(ht, "w", encoding="utf-8") as fh:
        fh.write(to_html(blocks, out_dir))
    return md, ht
