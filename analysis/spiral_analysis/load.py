"""Load one spiral run (an HDF5 file, layout in docs/output.md) into pandas/xarray.

    run = Run("/tmp/arb.h5")          # refuses a run whose status is not "complete"
    run.status, run.seed, run.scenario, run.attrs   # root attributes
    run.config                         # /config.yaml, parsed (dict) if PyYAML is present
    run.table("markets/pool")          # pandas.DataFrame, category columns decoded
    run.dataset("markets/pool")        # xarray.Dataset indexed by t (h5netcdf engine)
    run.markets(), run.oracles(), run.trades(), run.summary()

    sw = Sweep("sweeps/fees")          # a `spiral sweep` directory (or its summary.h5)
    sw.frame                           # one row per run: arm, replicate, seed, axes, status, metrics
    sw.runs(), sw.run(3)               # run file paths; run i as a Run
    st = Stress("stress/det.h5")       # a `spiral stress` file
    st.critical_value, st.curve, st.evaluations

Tables are groups of equal-length 1-D datasets; category columns carry the CF
attributes ``flag_values`` / ``flag_meanings`` and are decoded here to
``pandas.Categorical`` (categories in code order).
"""
import os

import h5py
import numpy as np
import pandas as pd

try:  # python3-yaml; optional
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    yaml = None

__all__ = ["Run", "Sweep", "Stress", "SpiralFileError", "IncompleteRunError", "decode_category"]


class SpiralFileError(Exception):
    """The path is missing, unreadable, or not a spiral run file."""


class IncompleteRunError(SpiralFileError):
    """The run's status is not "complete" (running, interrupted or failed)."""


def _py(v):
    """HDF5 attribute value -> plain Python (str, int, float, list)."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray):
        return [_py(x) for x in v.tolist()] if v.dtype.kind in "SO" else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def decode_category(codes, flag_values, flag_meanings):
    """Decode integer codes to a ``pandas.Categorical`` with the CF mapping.

    ``flag_meanings`` is the space-separated list of names in the order of
    ``flag_values``; categories keep that (code) order.  A code that is not in
    ``flag_values`` becomes NaN (missing), never a wrong name.
    """
    names = _py(flag_meanings)
    names = names.split() if isinstance(names, str) else list(names)
    values = np.asarray(flag_values).ravel().tolist()
    if len(names) != len(values):
        raise ValueError(f"flag_values ({len(values)}) and flag_meanings "
                         f"({len(names)}) differ in length")
    idx = _category_index(np.asarray(codes).ravel(), values)
    return pd.Categorical.from_codes(idx, categories=names)


def _category_index(codes, values):
    """Position of each code in ``values`` (-1 when absent), vectorised: one
    pass over the codes however many rows (``/positions`` has one row per
    position per snapshot)."""
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    vals = np.asarray(values, dtype=np.int64)
    c = codes.astype(np.int64, copy=False)
    if vals.size == 0:
        return np.full(c.shape, -1, dtype=np.int64)
    order = np.argsort(vals, kind="stable")
    sv = vals[order]
    pos = np.searchsorted(sv, c)
    pos_c = np.minimum(pos, sv.size - 1)
    hit = sv[pos_c] == c
    return np.where(hit, order[pos_c], -1).astype(np.int64)


def _natural(name):
    import re
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _is_category(dset):
    return "flag_values" in dset.attrs and "flag_meanings" in dset.attrs


class Run:
    """One spiral run file.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file written by ``spiral run``.
    allow_incomplete : bool
        By default a file whose root ``status`` is not ``complete`` is refused
        (``IncompleteRunError``): its tables may stop short of the horizon.
        Pass True to read it anyway (``run.status`` tells what it is).

    Raises ``SpiralFileError`` for a missing or unreadable file, or an HDF5
    file that is not a spiral run (no ``software`` attribute starting with
    "spiral", or no ``status``).  Use as a context manager or call
    ``close()``; the HDF5 file stays open (read-only) until then.
    """

    def __init__(self, path, allow_incomplete=False):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise SpiralFileError(f"{self.path}: no such file")
        if os.path.isdir(self.path):
            raise SpiralFileError(f"{self.path}: is a directory, not a run file")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise SpiralFileError(f"{self.path}: not a readable HDF5 file ({e})") from None
        try:
            self.attrs = {k: _py(v) for k, v in self._f.attrs.items()}
        except Exception as e:  # a damaged attribute table
            self._f.close()
            raise SpiralFileError(f"{self.path}: cannot read root attributes ({e})") from None
        software = str(self.attrs.get("software", ""))
        if not software.startswith("spiral") or "status" not in self.attrs:
            self._f.close()
            raise SpiralFileError(
                f"{self.path}: HDF5 file but not a spiral run "
                "(no root attributes 'software' = 'spiral ...' and 'status')")
        if self.attrs["status"] != "complete" and not allow_incomplete:
            self._f.close()
            raise IncompleteRunError(
                f"{self.path}: run status is {self.attrs['status']!r}, not 'complete' "
                "(the tables may stop short of the horizon); "
                "pass allow_incomplete=True to read it anyway")
        self._config = None

    # -- file handling -------------------------------------------------
    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"Run({self.path!r}: name={self.name!r} status={self.status!r} "
                f"seed={self.seed} t_end={self.attrs.get('t_end')})")

    @property
    def h5(self):
        """The open ``h5py.File`` (read-only) for anything not wrapped here."""
        return self._f

    # -- root attributes -----------------------------------------------
    status = property(lambda self: self.attrs.get("status"))
    seed = property(lambda self: self.attrs.get("seed"))
    scenario = property(lambda self: self.attrs.get("scenario"))
    name = property(lambda self: self.attrs.get("name"))
    software = property(lambda self: self.attrs.get("software"))
    horizon = property(lambda self: self.attrs.get("horizon"))
    t_end = property(lambda self: self.attrs.get("t_end"))

    # -- lineage (spiral resume: docs/snapshot.md) -----------------------
    parent_snapshot = property(lambda self: self.attrs.get("parent_snapshot"))
    resumed_at = property(lambda self: self.attrs.get("resumed_at"))

    @property
    def is_branch(self):
        """True for a ``spiral resume --set`` output (a what-if branch)."""
        return bool(self.attrs.get("branch", 0))

    @property
    def overrides(self):
        """The ``--set`` overrides of a branch, as a list of "key=value"."""
        text = self.attrs.get("overrides") or ""
        return [line for line in str(text).split("\n") if line]

    @property
    def config_text(self):
        """The fully resolved scenario, /config.yaml, as text."""
        if "config.yaml" not in self._f:
            return None
        return _py(self._f["config.yaml"][()])

    @property
    def config(self):
        """/config.yaml parsed with yaml.safe_load (a dict), or the raw text
        when PyYAML is not installed."""
        if self._config is None:
            text = self.config_text
            self._config = yaml.safe_load(text) if (yaml and text is not None) else text
        return self._config

    # -- tables ----------------------------------------------------------
    def groups(self, parent):
        """Names of the table groups directly under ``parent`` (e.g. "markets")."""
        if parent not in self._f:
            return []
        return [k for k, v in self._f[parent].items() if isinstance(v, h5py.Group)]

    def group_attrs(self, group):
        """Attributes of a group (e.g. a market's type, base, quote, fee) as a dict."""
        return {k: _py(v) for k, v in self._f[group].attrs.items()}

    def table(self, group, decode=True, columns=None):
        """A table group as a ``pandas.DataFrame``.

        Columns are the group's datasets: the dimension scale (``t`` or
        ``id``) first, then ``t_us`` if present, then the rest in the file's
        link order (by name; spiral does not track creation order), with
        numbered families in numeric order (``bid_price_2`` before ``_10``); the frame has a plain RangeIndex (``t``
        may repeat, e.g. several fills at one instant).  With ``decode``
        (default), category columns become ``pandas.Categorical`` using their
        ``flag_values``/``flag_meanings``; with ``decode=False`` they stay codes.
        ``columns`` (a list of names) reads only those datasets, in that
        order — cheaper on long tables such as ``/positions``.
        """
        if group not in self._f or not isinstance(self._f[group], h5py.Group):
            raise KeyError(f"{self.path}: no table group /{group.strip('/')}")
        g = self._f[group]
        names = [k for k, v in g.items() if isinstance(v, h5py.Dataset)]
        first = [k for k in names if _py(g[k].attrs.get("CLASS", b"")) == "DIMENSION_SCALE"]
        first += [k for k in ("t_us",) if k in names and k not in first]
        names = first + sorted((k for k in names if k not in first), key=_natural)
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise KeyError(f"{self.path}: /{group.strip('/')} has no column(s) {missing}")
            names = list(columns)
        cols = {}
        for k in names:
            d = g[k]
            data = d[()]
            if decode and _is_category(d):
                data = decode_category(data, d.attrs["flag_values"], d.attrs["flag_meanings"])
            cols[k] = data
        df = pd.DataFrame(cols)
        df.attrs.update(self.group_attrs(group))
        df.attrs["group"] = "/" + group.strip("/")
        return df

    def dataset(self, group, decode=False):
        """A table group as an ``xarray.Dataset`` via the h5netcdf engine,
        indexed by its dimension scale (``t`` or ``id``), loaded into memory.

        Category columns stay integer codes with their ``flag_values`` /
        ``flag_meanings`` attributes; ``decode=True`` replaces them by arrays
        of names (object dtype; NaN-free only when every code is known).
        """
        import xarray as xr
        if group not in self._f:
            raise KeyError(f"{self.path}: no table group /{group.strip('/')}")
        with xr.open_dataset(self.path, engine="h5netcdf", group=group.strip("/")) as ds:
            ds = ds.load()
        if decode:
            for k in list(ds.variables):
                a = ds[k].attrs
                if "flag_values" in a and "flag_meanings" in a:
                    cat = decode_category(ds[k].values, a["flag_values"], a["flag_meanings"])
                    ds[k] = (ds[k].dims, np.asarray(cat.astype(object)), a)
        return ds

    # -- typed views -----------------------------------------------------
    def market_kind(self, name):
        """'reference' (a reference price process), 'amm' (cpmm/stableswap),
        'lob' (order book), 'depth' (a book's depth table) or 'other'."""
        a = self.group_attrs(f"markets/{name}")
        if "process" in a:
            return "reference"
        t = a.get("type")
        if t in ("cpmm", "stableswap"):
            return "amm"
        if t == "lob":
            return "lob"
        if name.endswith("_depth") and f"markets/{name[:-6]}" in self._f:
            return "depth"
        return "other"

    def markets(self, kinds=("reference", "amm", "lob", "other")):
        """{name: DataFrame} for every /markets/<name> of the given kinds
        (default: everything except order-book depth tables — ask for
        ``kinds=("depth",)`` to get those).  Each frame's ``.attrs`` holds
        the group attributes plus ``kind``."""
        out = {}
        for n in self.groups("markets"):
            k = self.market_kind(n)
            if k in kinds:
                df = self.table(f"markets/{n}")
                df.attrs["kind"] = k
                out[n] = df
        return out

    def references(self):
        """{name: DataFrame} of the reference price processes only."""
        return self.markets(kinds=("reference",))

    def venues(self):
        """{name: DataFrame} of the trading venues (AMMs and order books)."""
        return self.markets(kinds=("amm", "lob"))

    def reference_for(self, venue):
        """Name of the reference process of a venue's base asset, or None."""
        base = self.group_attrs(f"markets/{venue}").get("base")
        for n in self.groups("markets"):
            if self.market_kind(n) == "reference" and self.group_attrs(f"markets/{n}").get("asset") == base:
                return n
        return None

    def oracles(self):
        """{name: DataFrame} for every /oracles/<name> (one row per publication;
        ``.attrs`` holds type, source, poll, latency)."""
        return {n: self.table(f"oracles/{n}") for n in self.groups("oracles")}

    def oracle_source_market(self, oracle):
        """The /markets name the oracle's ``source`` text mentions first
        (e.g. ``pool`` for ``twap(pool, 30m)``), or None."""
        import re
        src = str(self.group_attrs(f"oracles/{oracle}").get("source", ""))
        markets = set(self.groups("markets"))
        for tok in re.findall(r"[A-Za-z0-9_.-]+", src):
            if tok in markets:
                return tok
        return None

    def entities(self):
        """/entities: id, name and module type (decoded)."""
        return self.table("entities")

    def trades(self):
        """/events/trades with ``venue`` and ``agent`` decoded to entity names,
        ``cause`` and ``side`` to their names (all Categorical), plus
        ``quote_volume``: the quote amount of each fill (``amount_in`` for a
        buy, ``amount_out`` for a sell).  Empty (0 rows, same columns) when
        nothing traded."""
        if "events/trades" not in self._f:
            raise KeyError(f"{self.path}: no /events/trades")
        df = self.table("events/trades")
        buy = np.asarray(df["side"] == "buy") if len(df) else np.zeros(0, bool)
        df["quote_volume"] = np.where(buy, df["amount_in"].to_numpy(), df["amount_out"].to_numpy())
        return df

    def agents(self):
        """{name: DataFrame} for every /agents/<name> action table."""
        return {n: self.table(f"agents/{n}") for n in self.groups("agents")}

    def summary(self):
        """/summary attributes as {name: int|float} (empty if absent)."""
        if "summary" not in self._f:
            return {}
        return {k: _py(v) for k, v in sorted(self._f["summary"].attrs.items())}

    # -- lending (docs/output.md: /protocols, /positions, /system, /exposure, /vaults)
    def protocols(self):
        """{name: DataFrame} for every /protocols/<name> (one row per sample;
        ``.attrs["type"]`` is ``pool`` or ``cdp``)."""
        return {n: self.table(f"protocols/{n}") for n in self.groups("protocols")}

    def protocol_names(self):
        """Protocol names in code order (the ``flag_meanings`` of
        ``/positions/protocol``), else the /protocols groups."""
        if "positions/protocol" in self._f:
            d = self._f["positions/protocol"]
            if _is_category(d):
                names = _py(d.attrs["flag_meanings"])
                return names.split() if isinstance(names, str) else list(names)
        return self.groups("protocols")

    def entity_names(self):
        """{entity id: name} from /entities."""
        if "entities" not in self._f:
            return {}
        ids = self._f["entities/id"][()]
        d = self._f["entities/name"]
        if _is_category(d):
            names = decode_category(d[()], d.attrs["flag_values"], d.attrs["flag_meanings"])
            names = np.asarray(names.astype(object))
        else:
            names = [_py(x) for x in d[()]]
        return {int(i): str(n) for i, n in zip(ids.tolist(), names)}

    def _with_entity_names(self, df, col, new):
        """Add ``new``: the entity names of the ids in ``col`` (Categorical,
        categories in id order; an unknown id is NaN)."""
        ent = self.entity_names()
        ids = sorted(ent)
        df[new] = decode_category(df[col].to_numpy(), ids, [ent[i] for i in ids]) \
            if ids else pd.Categorical([None] * len(df))
        return df

    def positions(self, protocol=None, columns=None, owner_names=False):
        """/positions: one row per live position per snapshot (t, protocol,
        owner, collateral_value, debt_value, hf, liquidatable, layer);
        ``protocol`` decoded.  ``protocol`` (a name) keeps that protocol's
        rows only; ``columns`` reads only those datasets (``t`` and
        ``protocol`` are added when needed); ``owner_names`` adds
        ``owner_name`` from /entities.  Empty frame when snapshots are off."""
        if "positions" not in self._f:
            raise KeyError(f"{self.path}: no /positions")
        if columns is not None:
            columns = list(columns)
            need = ["t"] + (["protocol"] if protocol is not None else []) + \
                   (["owner"] if owner_names else [])
            columns = [c for c in need if c not in columns] + columns
        df = self.table("positions", columns=columns)
        if protocol is not None:
            if protocol not in self.protocol_names():
                raise KeyError(f"{self.path}: no protocol {protocol!r} in /positions "
                               f"(have {self.protocol_names()})")
            df = df[np.asarray(df["protocol"] == protocol)].reset_index(drop=True)
            df.attrs.update({"group": "/positions", "protocol": protocol})
        if owner_names:
            self._with_entity_names(df, "owner", "owner_name")
        return df

    def system(self):
        """/system: total collateral, debt, bad debt, the Collateral Multiplier
        and ``leverage_layer_<k>`` per sample."""
        return self.table("system")

    def exposure(self):
        """/exposure with ``holder`` and ``token`` decoded, plus ``issuer_name``
        (the issuer entity's name from /entities)."""
        df = self.table("exposure")
        return self._with_entity_names(df, "issuer", "issuer_name")

    def vaults(self):
        """{name: DataFrame} for every /vaults/<name> (``.attrs``: asset, share,
        debt, protocol, venue, target_leverage, band)."""
        return {n: self.table(f"vaults/{n}") for n in self.groups("vaults")}

    def has(self, group):
        """Whether the file holds the table group (e.g. "positions")."""
        return group.strip("/") in self._f and isinstance(self._f[group.strip("/")], h5py.Group)


# -- sweeps and stress tests (docs/output.md: "Sweep output", "Stress output") --

def _read_table(group):
    """An h5py group of equal-length 1-D datasets -> DataFrame, categories
    decoded, the dimension scale first, then the file's (name) order."""
    names = [k for k, v in group.items() if isinstance(v, h5py.Dataset)]
    first = [k for k in names if _py(group[k].attrs.get("CLASS", b"")) == "DIMENSION_SCALE"]
    cols = {}
    for k in first + [k for k in names if k not in first]:
        d = group[k]
        data = d[()]
        if _is_category(d):
            data = decode_category(data, d.attrs["flag_values"], d.attrs["flag_meanings"])
        cols[k] = data
    return pd.DataFrame(cols)


def _open_kind(path, kind):
    if not os.path.exists(path):
        raise SpiralFileError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SpiralFileError(f"{path}: not a readable HDF5 file ({e})") from None
    if _py(f.attrs.get("kind", "")) != kind:
        f.close()
        raise SpiralFileError(f"{path}: not a spiral {kind} file (root attribute kind != {kind!r})")
    return f


class Sweep:
    """A directory written by ``spiral sweep`` (its ``summary.h5`` and ``runs/``).

    ``Sweep(dir)`` (or the path of ``summary.h5``) reads the summary:

    - ``frame``: one row per run, in run order — ``run``, ``arm``,
      ``replicate``, ``seed``, ``status`` and ``resumed`` (Categorical),
      ``exit_code``, ``wall_seconds``, one column per axis (float64, or
      Categorical of the values' text for non-numeric axes) and one float64
      column per ``/summary`` metric (NaN where a run lacks it or did not
      complete);
    - ``axes``: the axis keys in file order; ``metrics``: the metric names;
    - ``attrs``: root attributes (``status`` is ``interrupted`` when the
      sweep was stopped; ``n_complete``, ``n_failed``, ... count rows);
    - ``sweep_text``: the sweep file as it was.

    ``runs()`` lists run file paths (row order), ``run(i)`` opens run ``i``
    as a :class:`Run`, ``by_arm(metric)`` averages a metric over replicates.
    """

    def __init__(self, path):
        path = os.fspath(path)
        if os.path.isdir(path):
            self.dir, self.path = path, os.path.join(path, "summary.h5")
        else:
            self.dir, self.path = os.path.dirname(path) or ".", path
        with _open_kind(self.path, "sweep") as f:
            self.attrs = {k: _py(v) for k, v in f.attrs.items()}
            self.frame = _read_table(f["runs"])
            ax = {k: _py(v) for k, v in f["axes"].attrs.items()}
            self.axes = [ax[f"axis_{i}"] for i in range(int(ax.get("n_axes", 0)))]
            self.axis_values = {ax[f"axis_{i}"]: ax[f"axis_{i}_values"] for i in range(len(self.axes))}
            self.sweep_text = _py(f["sweep.yaml"][()]) if "sweep.yaml" in f else None
            files = _py(f["run_files"][()]) if "run_files" in f else ""
        self._files = [x for x in files.split("\n") if x]
        fixed = {"run", "arm", "replicate", "seed", "status", "resumed", "exit_code", "wall_seconds"}
        self.metrics = [c for c in self.frame.columns if c not in fixed and c not in self.axes]
        self.frame.attrs.update({"sweep": self.attrs.get("sweep"), "axes": list(self.axes)})

    status = property(lambda self: self.attrs.get("status"))

    def __len__(self):
        return len(self.frame)

    def __repr__(self):
        return (f"Sweep({self.dir!r}: {len(self.frame)} runs, axes={self.axes}, "
                f"status={self.status!r})")

    def runs(self):
        """Paths of the run files, in row order (they exist for run rows whose
        status is not ``not_run``)."""
        runs_dir = os.path.join(self.dir, str(self.attrs.get("runs_dir", "runs")))
        return [os.path.join(runs_dir, x) for x in self._files]

    def run(self, i, allow_incomplete=False):
        """Run ``i`` (the ``run`` column) as a :class:`Run`."""
        return Run(self.runs()[int(i)], allow_incomplete=allow_incomplete)

    def complete(self):
        """The rows whose status is ``complete``."""
        return self.frame[np.asarray(self.frame["status"] == "complete")]

    def by_arm(self, metric):
        """Mean, standard deviation, count and the 95 % Student-t half-width
        ``ci95`` = t_{0.975, n−1} · std / √n of ``metric`` over the complete
        replicates of each arm, indexed by the axis values (NaN for n < 2).
        ``spiral_analysis.compare`` adds differences paired by seed."""
        from .metrics import t_quantile
        df = self.complete()
        keys = self.axes if self.axes else ["arm"]
        g = df.groupby(keys, observed=True)[metric]
        out = pd.DataFrame({"mean": g.mean(), "std": g.std(), "n": g.count()})
        tq = np.array([t_quantile(0.975, n - 1) if n >= 2 else np.nan for n in out["n"]])
        out["ci95"] = tq * out["std"] / np.sqrt(out["n"])
        return out


class Stress:
    """A file written by ``spiral stress`` (the fragility curve).

    ``critical_value`` (NaN when the threshold is never exceeded in the
    range), ``bracket`` (lo, hi), ``result`` (``found``, ``exceeded_at_lo``,
    ``not_reached``, ``interrupted``), ``param``, ``metric``, ``threshold``;
    ``curve``: one row per evaluated parameter value, sorted (``param``,
    ``mean``, ``std``, ``n_ok``, ``exceeds``, ``phase``, ``order``);
    ``evaluations``: one row per run (``order``, ``param``, ``replicate``,
    ``seed``, ``value``, ``status``, ``resumed``); ``runs()`` the run files.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        with _open_kind(self.path, "stress") as f:
            self.attrs = {k: _py(v) for k, v in f.attrs.items()}
            self.curve = _read_table(f["curve"])
            self.evaluations = _read_table(f["evaluations"])

    status = property(lambda self: self.attrs.get("status"))
    critical_value = property(lambda self: float(self.attrs["critical_value"]))
    bracket = property(lambda self: (float(self.attrs["bracket_lo"]), float(self.attrs["bracket_hi"])))
    result = property(lambda self: self.attrs.get("result"))
    param = property(lambda self: self.attrs.get("param"))
    metric = property(lambda self: self.attrs.get("metric"))
    threshold = property(lambda self: float(self.attrs["threshold"]))

    def __repr__(self):
        return (f"Stress({self.path!r}: {self.param} -> {self.metric} > {self.threshold}: "
                f"{self.result}, critical {self.critical_value})")

    def runs(self):
        """Run file paths, in the order of ``evaluations``."""
        d = os.path.join(os.path.dirname(self.path) or ".", str(self.attrs.get("runs_dir", "")))
        return [os.path.join(d, f"p{int(o):03d}_r{int(k)}.h5")
                for o, k in zip(self.evaluations["order"], self.evaluations["replicate"])]


def continued(parent, child, group=None, decode=True, columns=None):
    """One table of a run that was checkpointed and resumed (or branched):
    the parent's rows up to the snapshot, then all of ``child``'s, as one
    ``pandas.DataFrame``.

    ``continued(parent, child, group)`` with ``Run`` objects or paths, or
    ``continued(child, group)``: the parent is then the file the snapshot
    recorded as its output (root attribute ``parent_output``).  The child
    must be a ``spiral resume`` output.  The parent's part is its first
    ``parent_rows`` rows (the recorder's position stored in the snapshot,
    an attribute of each table of the child) and must be exactly its rows
    with ``t`` up to ``resumed_at`` — else the file is not this run's parent
    and ``SpiralFileError`` says so.  For a plain resume the result equals
    the uninterrupted run's table bit for bit; for a branch it is the
    what-if history.  The frame's attrs get ``branch_t`` (s).
    """
    if group is None:                       # continued(child, group)
        child, group, parent = parent, child, None
    c = child if isinstance(child, Run) else Run(child)
    p = None
    try:
        t0 = c.resumed_at
        if t0 is None:
            raise SpiralFileError(f"{c.path}: not a `spiral resume` output (no resumed_at)")
        if parent is None:
            ppath = c.attrs.get("parent_output") or ""
            if not ppath:
                raise SpiralFileError(f"{c.path}: the snapshot recorded no output file; "
                                      "pass the parent run explicitly")
            if not os.path.isabs(ppath) and not os.path.exists(ppath):
                ppath = os.path.join(os.path.dirname(c.path), ppath)
            p = Run(ppath, allow_incomplete=True)
        else:
            p = parent if isinstance(parent, Run) else Run(parent)
        a = p.table(group, decode=decode, columns=columns)
        b = c.table(group, decode=decode, columns=columns)
        tcol = "t" if "t" in a.columns else a.columns[0]
        upto = int((a[tcol] <= t0).sum())
        rows = c.group_attrs(group).get("parent_rows")
        if rows is not None and int(rows) != upto:
            raise SpiralFileError(
                f"{p.path}: has {upto} rows of /{group.strip('/')} up to t = {t0} s, but the "
                f"snapshot {c.parent_snapshot} was taken after {int(rows)}: not the output of "
                "the run this file resumes")
        out = pd.concat([a.iloc[:upto], b], ignore_index=True)
        out.attrs.update(b.attrs)
        out.attrs.pop("parent_rows", None)
        out.attrs["branch_t"] = t0
        return out
    finally:
        if p is not None and p is not parent:
            p.close()
        if c is not child:
            c.close()
