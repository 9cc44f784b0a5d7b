"""Compare the arms of a sweep, and draw a stress test's fragility curve.

    from spiral_analysis.compare import compare, write_compare, write_fragility
    res = compare("sweeps/ava", by="protocols.maker.liquidation.mechanism")
    res.table        # one row per arm x metric: n, mean, CI, difference vs the baseline arm
    write_compare("sweeps/ava", "out/")      # compare.md, .csv, .png, .html
    write_fragility("stress/ava.h5", "out/") # fragility.png, .md, .csv, .html

Statistics (documented in analysis/README.md):

- per arm and metric: the mean over the arm's complete replicates with a
  Student-t interval, mean ± t_{0.975, n−1} · s / √n (s: sample standard
  deviation, ddof 1);
- against the baseline arm (the first value of the ``by`` axis, or
  ``baseline=``) with the same values of the other axes: when both arms ran
  at least two common seeds the difference is **paired by seed** — the
  per-seed differences d_k = x_arm,k − x_base,k over the common seeds, mean ±
  t_{0.975, n−1} · s_d / √n (replicate k has the same seed and the same
  random draws in every arm, so the pairs share their noise and the interval
  is much narrower than an unpaired one); the per-seed ratios x_arm,k /
  x_base,k get the same t interval (``ratio_*``: with ``by: counterfactual``
  and baseline ``no-feedback`` that is the amplification).  Otherwise
  Welch's unpaired interval: mean_a − mean_b ± t_{0.975, ν} · √(s_a²/n_a +
  s_b²/n_b), ν by Welch–Satterthwaite.
"""
import math
import os

import numpy as np
import pandas as pd

from . import metrics as M
from .load import SpiralFileError, Stress, Sweep

LEVEL = 0.95

# Default metrics, in this order, when present (and not all NaN).
DEFAULT_METRICS = ("bad_debt_total", "liquidation_losses", "max_drawdown_*", "liquidated_value",
                   "n_liquidations", "cascade_depth", "zero_bid_share", "liquidator_profit",
                   "amplification*")


class CompareError(ValueError):
    """Bad arguments for compare (unknown axis, metric or baseline)."""


def _axis_order(frame, key):
    """Values of an axis in arm order (first appearance)."""
    seen = []
    for v in frame.sort_values("arm", kind="stable")[key].tolist():
        if not any(_same(v, s) for s in seen):
            seen.append(v)
    return seen


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _label(v):
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).strip("'\"")


def _welch(a, b, level=LEVEL):
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    b = np.asarray(b, float)
    b = b[np.isfinite(b)]
    nan = float("nan")
    if a.size < 2 or b.size < 2:
        return nan, nan, nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    d = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    nu = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = M.t_quantile(0.5 + level / 2, nu) * se
    return d, d - half, d + half


def _resolve_metrics(sw, frame, requested):
    """(list of metric names, whether run files are needed)."""
    have = set(sw.metrics)
    run_side = set(M.RUN_METRICS)
    if requested:
        out = []
        for m in requested:
            if "*" in m:
                import fnmatch
                hits = [c for c in sw.metrics if fnmatch.fnmatch(c, m)]
                if not hits:
                    raise CompareError(f"no metric matches {m!r}")
                out += hits
            elif m in have or m in run_side:
                out.append(m)
            else:
                raise CompareError(
                    f"unknown metric {m!r}; the sweep has: {', '.join(sorted(have))}; "
                    f"computed from the run files: {', '.join(M.RUN_METRICS)}")
        return out
    out = []
    for m in DEFAULT_METRICS:
        if m == "max_drawdown_*":
            dd = [c for c in sw.metrics if c.startswith("max_drawdown_")]
            venues = [c for c in dd if not c.startswith("max_drawdown_reference")]
            out += venues or dd
        elif "*" in m:
            import fnmatch
            out += [c for c in sw.metrics if fnmatch.fnmatch(c, m)]
        elif m == "zero_bid_share":
            if "n_auctions" in frame and (frame["n_auctions"].fillna(0) > 0).any():
                out.append(m)
        elif m in have or m in run_side:
            out.append(m)
    return out


def compare(path, by=None, metrics=None, baseline=None, level=LEVEL):
    """Per-arm means with t intervals, and differences to a baseline arm
    (paired by seed when possible) — see the module docstring.

    ``path``: a sweep directory (or its ``summary.h5``) or a ``Sweep``.
    ``by``: the axis whose values are compared (default: the first category
    axis, else the last axis); arms are matched on the other axes.
    ``metrics``: names (``/summary`` columns of the sweep, shell-style
    patterns such as ``max_drawdown_*``, or run-file metrics
    ``metrics.RUN_METRICS`` such as ``liquidation_losses``, computed by
    opening each complete run); default ``DEFAULT_METRICS`` that exist.

    Returns a ``Comparison`` with ``table`` (one row per arm × metric),
    ``values`` (one row per complete run, the metrics as columns), ``by``,
    ``others`` (the remaining axes), ``baseline`` and ``metrics``.
    """
    sw = path if isinstance(path, Sweep) else _open_sweep(path)
    frame = sw.complete().copy()
    if len(frame) == 0:
        raise CompareError(f"{sw.dir}: no complete run in the sweep (status {sw.status})")
    axes = list(sw.axes)
    cat_axes = [a for a in axes if isinstance(frame[a].dtype, pd.CategoricalDtype)]
    if by is None:
        by = cat_axes[0] if cat_axes else (axes[-1] if axes else None)
    elif by not in axes:
        raise CompareError(f"--by {by!r} is not an axis of the sweep (axes: {', '.join(axes) or 'none'})")
    for a in cat_axes:
        frame[a] = frame[a].astype(object).map(_label)
    others = [a for a in axes if a != by]
    mlist = _resolve_metrics(sw, frame, metrics)
    need_runs = [m for m in mlist if m in M.RUN_METRICS and m not in sw.metrics]
    if need_runs:
        extra = {m: [] for m in M.RUN_METRICS}
        for i in frame["run"]:
            with sw.run(int(i)) as run:
                rm = M.run_metrics(run)
            for m in M.RUN_METRICS:
                extra[m].append(rm.get(m, float("nan")))
        for m in need_runs:
            frame[m] = np.asarray(extra[m], dtype=float)
    if metrics is None:  # defaults: drop what no run has
        mlist = [m for m in mlist if m in frame and np.isfinite(frame[m].astype(float)).any()]
    if not mlist:
        raise CompareError("no metric to compare")
    by_values = _axis_order(frame, by) if by else [None]
    if baseline is None:
        base_val = by_values[0]
    else:
        hits = [v for v in by_values if _label(v) == str(baseline) or
                (isinstance(v, float) and _num_eq(v, baseline))]
        if not hits:
            raise CompareError(f"--baseline {baseline!r} is not a value of {by} "
                               f"({', '.join(_label(v) for v in by_values)})")
        base_val = hits[0]

    arms = frame.sort_values("arm", kind="stable")["arm"].unique().tolist()
    rows = []
    for arm in arms:
        sub = frame[frame["arm"] == arm]
        first = sub.iloc[0]
        key = {a: first[a] for a in axes}
        if by:
            bsel = (frame[by].map(lambda v: _same(v, base_val)))
            for a in others:
                bsel &= frame[a].map(lambda v, w=key[a]: _same(v, w))
            base = frame[bsel]
        else:
            base = sub
        is_base = by is None or _same(key[by], base_val)
        for m in mlist:
            x = sub[m].astype(float)
            ci = M.mean_ci(x.to_numpy(), level)
            row = dict(key, arm=int(arm), metric=m, n=ci.n, mean=ci.mean, std=ci.std,
                       ci_lo=ci.lo, ci_hi=ci.hi, baseline=_label(base_val) if by else "",
                       is_baseline=is_base, pairing="", n_pairs=0, diff=np.nan, diff_lo=np.nan,
                       diff_hi=np.nan, ratio=np.nan, ratio_lo=np.nan, ratio_hi=np.nan)
            if not is_base and len(base):
                xa = pd.Series(x.to_numpy(), index=sub["seed"].to_numpy())
                xb = pd.Series(base[m].astype(float).to_numpy(), index=base["seed"].to_numpy())
                common = [s for s in xa.index if s in xb.index and np.isfinite(xa[s]) and np.isfinite(xb[s])]
                if len(common) >= 2:
                    a_, b_ = xa[common].to_numpy(), xb[common].to_numpy()
                    d = M.paired_ci(a_, b_, level)
                    r = M.mean_ci(M.paired_amplification(a_, b_), level)
                    row.update(pairing="paired", n_pairs=len(common), diff=d.mean, diff_lo=d.lo,
                               diff_hi=d.hi, ratio=r.mean, ratio_lo=r.lo, ratio_hi=r.hi)
                else:
                    d, lo, hi = _welch(xa.to_numpy(), xb.to_numpy(), level)
                    row.update(pairing="welch", diff=d, diff_lo=lo, diff_hi=hi)
            rows.append(row)
    table = pd.DataFrame(rows)
    return Comparison(sw, frame, table, by, others, base_val, mlist, level)


def _num_eq(v, text):
    try:
        return float(text) == v
    except (TypeError, ValueError):
        return False


def _open_sweep(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SpiralFileError(f"{path}: no such file or directory")
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "summary.h5")):
        raise SpiralFileError(f"{path}: not a sweep directory (no summary.h5; "
                              "'spiral sweep SWEEP.yaml -o DIR' writes one)")
    return Sweep(path)


class Comparison:
    """The result of :func:`compare`."""

    def __init__(self, sweep, values, table, by, others, baseline, metrics, level):
        self.sweep, self.values, self.table = sweep, values, table
        self.by, self.others, self.baseline, self.metrics, self.level = \
            by, others, baseline, metrics, level

    def markdown_blocks(self):
        """Report blocks (report.to_markdown / to_html): one table per metric."""
        sw = self.sweep
        B = [("h1", f"spiral sweep comparison: {os.path.basename(os.path.abspath(sw.dir))}"),
             ("p", f"Sweep `{os.path.abspath(sw.dir)}` ({sw.attrs.get('sweep')}, base "
                   f"{sw.attrs.get('base')}): {len(sw.frame)} runs, {len(self.values)} complete, "
                   f"status {sw.status}; axes: {', '.join(f'`{a}`' for a in sw.axes) or 'none'}."),
             ("p", f"Mean over the complete replicates of each arm with a {100 * self.level:g} % "
                   "Student-t interval [lo, hi] (mean ± t·s/√n). "
                   + (f"Δ = arm − baseline arm (`{self.by}` = {_label(self.baseline)}, same other "
                      "axes): *paired* by seed (replicate k has the same seed and random draws in "
                      "every arm; t interval of the per-seed differences) when both arms share at "
                      "least two seeds, else Welch's unpaired interval. ratio = mean of the per-seed "
                      "ratios arm / baseline (paired only)." if self.by else ""))]
        for m in self.metrics:
            t = self.table[self.table["metric"] == m]
            head = list(self.others) + ([self.by] if self.by else []) + \
                ["n", "mean", f"{100 * self.level:g} % CI"]
            if self.by:
                head += ["Δ vs baseline", f"Δ {100 * self.level:g} % CI", "ratio (CI)", "pairing"]
            rows = []
            for d in t.to_dict("records"):
                row = [_label(d[a]) for a in self.others] + ([_label(d[self.by])] if self.by else [])
                row += [str(d["n"]), _f(d["mean"]), f"[{_f(d['ci_lo'])}, {_f(d['ci_hi'])}]"]
                if self.by:
                    if d["is_baseline"]:
                        row += ["baseline", "", "", ""]
                    else:
                        ratio = (f"{_f(d['ratio'])} [{_f(d['ratio_lo'])}, {_f(d['ratio_hi'])}]"
                                 if d["pairing"] == "paired" and np.isfinite(d["ratio"]) else "–")
                        pairing = (f"paired ({d['n_pairs']} seeds)" if d["pairing"] == "paired"
                                   else d["pairing"] or "–")
                        row += [_f(d["diff"]), f"[{_f(d['diff_lo'])}, {_f(d['diff_hi'])}]", ratio,
                                pairing]
                rows.append(row)
            B.append(("h2", m))
            B.append(("table", head, rows))
        return B


def _f(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(v):
        return "–"
    if v != 0 and (abs(v) >= 1e7 or abs(v) < 1e-3):
        return f"{v:.4g}"
    return f"{v:,.4g}" if abs(v) < 1e3 else f"{v:,.1f}"


def compare_figure(cmp, diff=False):
    """One panel per metric.  Two axes: the metric against the other axis
    (x), one line per value of ``by`` with its CI band and the per-seed
    values as dots.  One axis (or more than two): bars per arm with CI error
    bars and the per-seed dots.  With ``diff=True``: the differences to the
    baseline arm with their (paired) intervals instead, baseline arms left
    out; None when there is no non-baseline arm."""
    from . import plots  # noqa: F401  (Agg backend)
    import matplotlib.pyplot as plt
    ms = cmp.metrics
    if diff and (cmp.by is None or cmp.table["is_baseline"].all()):
        return None
    col, lo_c, hi_c = ("diff", "diff_lo", "diff_hi") if diff else ("mean", "ci_lo", "ci_hi")
    ncol = min(3, len(ms))
    nrow = int(math.ceil(len(ms) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.0 * nrow), squeeze=False)
    by = cmp.by
    by_vals = _axis_order(cmp.values, by) if by else [None]
    colors = {(_label(v) if by else None): f"C{i}" for i, v in enumerate(by_vals)}
    lines = by is not None and len(cmp.others) == 1
    for k, m in enumerate(ms):
        ax = axes[k // ncol, k % ncol]
        t = cmp.table[cmp.table["metric"] == m]
        if diff:
            t = t[~t["is_baseline"]]
            ax.axhline(0, color="black", lw=0.8)
        if lines:
            xa = cmp.others[0]
            xvals = _axis_order(cmp.values, xa)
            numeric = all(isinstance(v, (int, float, np.floating)) for v in xvals)
            pos = {(_label(v)): (float(v) if numeric else i) for i, v in enumerate(xvals)}
            for bv in by_vals:
                tb = t[t[by].map(lambda v, w=bv: _same(v, w))]
                if not len(tb):
                    continue
                x = np.array([pos[_label(v)] for v in tb[xa]])
                o = np.argsort(x)
                c = colors[_label(bv)]
                ax.plot(x[o], tb[col].to_numpy()[o], "o-", color=c, label=_label(bv))
                ax.fill_between(x[o], tb[lo_c].to_numpy()[o], tb[hi_c].to_numpy()[o],
                                color=c, alpha=0.18, lw=0)
                if not diff:
                    vv = cmp.values[cmp.values[by].map(lambda v, w=bv: _same(v, w))]
                    ax.plot([pos[_label(v)] for v in vv[xa]], vv[m].astype(float), ".", color=c,
                            alpha=0.5, ms=4)
            if not numeric:
                ax.set_xticks(range(len(xvals)))
                ax.set_xticklabels([_label(v) for v in xvals], rotation=20, fontsize=8)
            ax.set_xlabel(xa)
        else:
            labels, x = [], np.arange(len(t))
            for i, d in enumerate(t.to_dict("records")):
                labels.append(", ".join(_label(d[a]) for a in ([by] if by else []) + cmp.others)
                              or f"arm {d['arm']}")
                c = colors.get(_label(d[by]) if by else None, "C0")
                mean = d[col]
                err = [[mean - d[lo_c]], [d[hi_c] - mean]] if np.isfinite(d[lo_c]) else None
                ax.bar(i, mean, color=c, alpha=0.6, yerr=err, capsize=4)
                if not diff:
                    vv = cmp.values[cmp.values["arm"] == d["arm"]][m].astype(float)
                    ax.plot(np.full(len(vv), i), vv, ".", color="black", alpha=0.6, ms=4)
            ax.set_xticks(x)
            ax.set_xticklabels(labels, rotation=20, fontsize=8, ha="right")
            if by:
                ax.set_xlabel(by)
        ax.set_title(f"{m} − baseline" if diff else m, fontsize=10)
        ax.grid(alpha=0.3)
    if lines:
        axes[0, 0].legend(title=by, fontsize=8, title_fontsize=8)
    for k in range(len(ms), nrow * ncol):
        axes[k // ncol, k % ncol].set_visible(False)
    name = os.path.basename(os.path.abspath(cmp.sweep.dir))
    fig.suptitle(f"sweep {name}: difference to the baseline {cmp.by} = {_label(cmp.baseline)} "
                 f"(paired by seed where the arms share seeds), {100 * cmp.level:g} % t interval"
                 if diff else f"sweep {name}: mean and {100 * cmp.level:g} % t interval over "
                 "replicate seeds", fontsize=11)
    fig.tight_layout()
    return fig


def write_compare(path, out_dir=None, by=None, metrics=None, baseline=None, level=LEVEL):
    """Write compare.md, compare.csv, compare.png (means), compare_diff.png
    (differences to the baseline; only when there is a non-baseline arm) and
    a self-contained compare.html into ``out_dir`` (default:
    ``DIR/compare``).  Returns the list of paths written."""
    from . import plots, report
    cmp = compare(path, by=by, metrics=metrics, baseline=baseline, level=level)
    out_dir = out_dir or os.path.join(cmp.sweep.dir, "compare")
    os.makedirs(out_dir, exist_ok=True)
    csv = os.path.join(out_dir, "compare.csv")
    cmp.table.to_csv(csv, index=False)
    png = plots.save(compare_figure(cmp), os.path.join(out_dir, "compare.png"))
    blocks = cmp.markdown_blocks()
    blocks.insert(3, ("img", "compare.png",
                      f"Mean per arm with its {100 * level:g} % t interval; dots: the replicate seeds."))
    written = [md_path := os.path.join(out_dir, "compare.md"), csv, png]
    dfig = compare_figure(cmp, diff=True)
    if dfig is not None:
        written.append(plots.save(dfig, os.path.join(out_dir, "compare_diff.png")))
        blocks.insert(4, ("img", "compare_diff.png",
                          f"Difference to the baseline arm ({cmp.by} = {_label(cmp.baseline)}) "
                          f"with its {100 * level:g} % interval, paired by seed where possible."))
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(report.to_markdown(blocks))
    ht = os.path.join(out_dir, "compare.html")
    with open(ht, "w", encoding="utf-8") as fh:
        fh.write(report.to_html(blocks, out_dir))
    return written + [ht]


# -- fragility (spiral stress) ----------------------------------------------
def _open_stress(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SpiralFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise SpiralFileError(f"{path}: is a directory, not a stress file")
    return Stress(path)


def fragility_figure(st):
    """The fragility curve: metric mean per evaluated parameter value (line;
    grid points as circles, bisection points as diamonds), ± one standard
    deviation (band), every seed's value (grey dots), the threshold
    (dashed) and the critical value (vertical line; its bracket shaded)."""
    from . import plots  # noqa: F401
    import matplotlib.pyplot as plt
    c = st.curve
    ev = st.evaluations
    fig, ax = plt.subplots(figsize=(9, 5.2))
    x = c["param"].to_numpy(float)
    mean = c["mean"].to_numpy(float)
    sd = np.nan_to_num(c["std"].to_numpy(float))
    ax.fill_between(x, mean - sd, mean + sd, color="C0", alpha=0.15, lw=0, label="mean ± 1 sd")
    ax.plot(x, mean, "-", color="C0", lw=1.5)
    phase = c["phase"].astype(str).to_numpy()
    for ph, mk in (("grid", "o"), ("bisection", "D")):
        sel = phase == ph
        if sel.any():
            ax.plot(x[sel], mean[sel], mk, color="C0", ms=5, label=f"mean ({ph})")
    ok = np.isfinite(ev["value"].to_numpy(float))
    ax.plot(ev["param"][ok], ev["value"][ok], ".", color="grey", alpha=0.6, ms=5,
            label=f"per seed ({int(st.attrs.get('n_seeds', 0))} seeds)")
    ax.axhline(st.threshold, color="C3", ls="--", lw=1.2, label=f"threshold {st.threshold:g}")
    cv = st.critical_value
    if np.isfinite(cv):
        lo, hi = st.bracket
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color="C3", alpha=0.12)
        ax.axvline(cv, color="C3", lw=1.5, label=f"critical value {cv:.6g}")
    ax.set_xlabel(str(st.param))
    ax.set_ylabel(str(st.metric))
    ax.set_title(f"fragility: {st.metric} vs {st.param} — {st.result}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def write_fragility(path, out_dir=None):
    """Write fragility.png, fragility.md, fragility.csv (the curve) and a
    self-contained fragility.html into ``out_dir`` (default: the stress file
    without ``.h5`` + ``_fragility``).  Returns the paths written."""
    from . import plots, report
    st = _open_stress(path)
    out_dir = out_dir or os.path.splitext(os.path.abspath(path))[0] + "_fragility"
    os.makedirs(out_dir, exist_ok=True)
    png = plots.save(fragility_figure(st), os.path.join(out_dir, "fragility.png"))
    csv = os.path.join(out_dir, "fragility.csv")
    st.curve.to_csv(csv, index=False)
    a = st.attrs
    cv = st.critical_value
    lo, hi = st.bracket
    B = [("h1", f"spiral stress: {st.metric} vs {st.param}"),
         ("p", f"File `{os.path.abspath(st.path)}` (scenario {a.get('scenario')}, status "
               f"{st.status}). Range [{_f(a.get('lo'))}, {_f(a.get('hi'))}], tol {_f(a.get('tol'))}, "
               f"{a.get('n_seeds')} seeds from {a.get('seed_base')}."),
         ("p", f"**Result: {st.result}.** Critical value of `{st.param}` (smallest evaluated "
               f"value whose mean {st.metric} exceeds {st.threshold:g}): **{_f(cv)}**; bracket "
               f"[{_f(lo)}, {_f(hi)}]."),
         ("img", "fragility.png", "Mean of the metric per evaluated value (± 1 sd), each seed's "
                                  "value, the threshold and the critical value with its bracket."),
         ("h2", "Curve"),
         ("table", ["param", "mean", "std", "n_ok", "exceeds", "phase", "order"],
          [[_f(r.param), _f(r.mean), _f(r.std), str(int(r.n_ok)), str(r.exceeds), str(r.phase),
            str(int(r.order))] for r in st.curve.itertuples(index=False)])]
    md = os.path.join(out_dir, "fragility.md")
    with open(md, "w", encoding="utf-8") as fh:
        fh.write(report.to_markdown(B))
    ht = os.path.join(out_dir, "fragility.html")
    with open(ht, "w", encoding="utf-8") as fh:
        fh.write(report.to_html(B, out_dir))
    return [md, csv, png, ht]
