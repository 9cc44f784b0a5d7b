"""The report command: files written, exit codes for bad input."""
import os
import re
import shutil
import subprocess
import sys

import h5py

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args):
    env = dict(os.environ, PYTHONPATH=ANALYSIS, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "spiral_analysis", *args],
                          capture_output=True, text=True, env=env, timeout=120)


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli_inproc(capsys, *args):
    """The CLI's main() in this process (no interpreter start-up: the error
    paths are checked without a subprocess each; test_report_writes_files
    runs the real `python -m spiral_analysis`)."""
    from spiral_analysis.__main__ import main
    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as e:          # argparse usage errors
        rc = e.code
    out = capsys.readouterr()
    return _Result(rc, out.out, out.err)


def test_report_writes_files(amm_run, tmp_path):
    out = tmp_path / "rep"
    r = cli("report", amm_run, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(out / "report.md"), str(out / "report.html")]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["oracle_feed.png", "oracle_osm.png", "price_paths.png", "trades_by_cause.png"]
    for p in pngs:
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / p).stat().st_size > 10000
    md = (out / "report.md").read_text()
    assert "# spiral run report: test_amm" in md and "| seed | 11 |" in md
    assert "| pool | arbitrage |" in md
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / img).exists()
    html = (out / "report.html").read_text()
    # self-contained: every image is embedded, none is linked
    srcs = re.findall(r"<img [^>]*src='([^']*)'", html)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_report_default_dir_and_lob(lob_run, tmp_path):
    run = tmp_path / "lob.h5"
    shutil.copy(lob_run, run)
    r = cli("report", str(run))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lob_report" / "report.html").exists()
    assert (tmp_path / "lob_report" / "price_paths.png").exists()


def test_report_bad_input_exits_2(amm_run, tmp_path, capsys):
    cli = lambda *a: cli_inproc(capsys, *a)  # noqa: E731
    r = cli("report", str(tmp_path / "missing.h5"))
    assert r.returncode == 2 and "no such file" in r.stderr
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    r = cli("report", str(junk))
    assert r.returncode == 2 and "not a readable HDF5 file" in r.stderr
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1, 2, 3]
    r = cli("report", str(other))
    assert r.returncode == 2 and "not a spiral run" in r.stderr
    bad = tmp_path / "running.h5"
    shutil.copy(amm_run, bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["status"] = "running"
    r = cli("report", str(bad), "-o", str(tmp_path / "r1"))
    assert r.returncode == 2 and "'running'" in r.stderr and r.stdout == ""
    r = cli("report", str(bad), "-o", str(tmp_path / "r2"), "--allow-incomplete")
    assert r.returncode == 0 and (tmp_path / "r2" / "report.html").exists()
    assert cli().returncode == 2
    assert cli("report").returncode == 2
