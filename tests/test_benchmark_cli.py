"""The benchmark runner (deepcausal.benchmark) and the `deepcausal` command (deepcausal.cli)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deepcausal import cli
from deepcausal.baselines import NotApplicableError
from deepcausal.benchmark import run


def test_run_one_row_per_design_method_seed_and_same_data():
    seen = {}

    def on_result(row, pred, design):
        seen.setdefault((row["design"], row["seed"]), set()).add(id(design))
        assert pred.shape == (design.n_test,)

    df = run(["lowdim"], ["naive", "sieve2sls"], seeds=[0, 1], n=300, progress=False, on_result=on_result)
    assert len(df) == 4
    assert set(map(tuple, df[["method", "seed"]].to_numpy().tolist())) == {
        ("naive", 0), ("naive", 1), ("sieve2sls", 0), ("sieve2sls", 1)}
    assert np.isfinite(df[["mse", "fit_seconds"]].to_numpy(dtype=float)).all()
    assert (df["fit_seconds"] > 0).all()
    assert list(df.columns) == ["design", "parameters", "method", "seed", "mse", "fit_seconds", "peak_rss_mb", "error"]
    assert (df["error"] == "").all()
    assert all(len(ids) == 1 for ids in seen.values())  # every method saw the same Design object


def test_run_all_methods_on_a_proxy_design():
    df = run("demand_proxy", ["naive_proxy", "kpv"], seeds=[0], n=300, progress=False)
    assert sorted(df["method"]) == ["kpv", "naive_proxy"]
    assert df["parameters"].iloc[0] == "n=300"


def test_run_errors_before_any_fit():
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        run("lowdim", ["naive", "nope"], seeds=[0], n=100, progress=False)
    with pytest.raises(ValueError, match="unknown design 'nope'"):
        run("nope", ["naive"], seeds=[0], n=100, progress=False)
    with pytest.raises(NotApplicableError, match="'kiv' applies to iv designs"):
        run("demand_proxy", ["kiv"], seeds=[0], n=100, progress=False)


def test_cli_unknown_method_in_process(capsys):
    assert cli.main(["bench", "--design", "lowdim", "--methods", "naive,nope"]) != 0
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err and "known methods" in err and "sieve2sls" in err


def test_cli_inapplicable_method(capsys):
    assert cli.main(["bench", "--design", "demand_proxy", "--methods", "dfiv"]) != 0
    assert "'dfiv' applies to iv designs, but 'demand_proxy' is a proxy design" in capsys.readouterr().err


def test_cli_unknown_method_subprocess():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "deepcausal.cli", "bench", "--design", "lowdim", "--methods", "nope"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2
    assert "unknown method 'nope'" in res.stderr


def test_cli_list(capsys):
    assert cli.main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("dfiv", "dfpv", "kiv", "kpv", "pmmr", "demand_proxy", "lowdim", "linear_binary_iv"):
        assert name in out


def test_cli_list_designs_one_line_per_design_with_kind_and_source(capsys):
    from deepcausal.benchmark import DESIGN_REGISTRY, DESIGNS

    assert cli.main(["bench", "--list-designs"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(DESIGNS)
    for name, line in zip(DESIGNS, lines):
        fields = line.split(None, 2)
        assert fields[0] == name and fields[1] == DESIGN_REGISTRY[name].kind
        assert fields[2] == DESIGN_REGISTRY[name].source
    found = {ln.split()[0]: ln for ln in lines}
    assert "Newey & Powell (2003)" in found["newey_powell"] and found["mastouri_proxy"].split()[1] == "proxy"
    assert "Singh, Sahani & Gretton (2019)" in found["kiv_sigmoid"] and "Biometrika" in found["miao_proxy"]
    for name in ("demand", "lowdim", "demand_proxy", "dsprites_proxy", "chen_christensen_severe", "weak_iv"):
        assert name in found
    # --list still lists every design with its kind
    assert cli.main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {d} " in out for d in DESIGNS)


def test_cli_writes_json_markdown_plot(tmp_path):
    paths = {k: str(tmp_path / f"out.{k}") for k in ("json", "md", "png")}
    rc = cli.main(["bench", "--design", "lowdim", "--n", "300", "--seeds", "0,1", "--methods", "naive,sieve2sls",
                   "--json", paths["json"], "--markdown", paths["md"], "--plot", paths["png"], "--no-progress"])
    assert rc == 0
    rows = json.loads(open(paths["json"]).read())["results"]
    assert len(rows) == 4 and {r["method"] for r in rows} == {"naive", "sieve2sls"}
    assert "| lowdim | sieve2sls |" in open(paths["md"]).read()
    assert os.path.getsize(paths["png"]) > 10_000


def test_cli_interrupted_run_keeps_finished_fits(tmp_path, monkeypatch):
    from deepcausal.baselines import _classic

    def interrupt(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(_classic.Sieve2SLS, "_fit", interrupt)
    out = str(tmp_path / "out.json")
    rc = cli.main(["bench", "--design", "lowdim", "--n", "300", "--methods", "naive,sieve2sls", "--json", out,
                   "--no-progress"])
    assert rc == 0
    rows = json.loads(open(out).read())["results"]
    assert [r["method"] for r in rows] == ["naive"]


# ---- --list, missing dependencies, the plot and the summary (issue 15) ---------------------------
def _method_lines(out):
    from deepcausal.baselines import REGISTRY

    lines = out.splitlines()
    return {name: [ln for ln in lines if ln.startswith(f"  {name} ")] for name in REGISTRY}


def test_cli_list_one_plain_text_line_per_method(capsys):
    from deepcausal.baselines import REGISTRY

    assert cli.main(["bench", "--list"]) == 0
    found = _method_lines(capsys.readouterr().out)
    for name, cls in REGISTRY.items():
        assert len(found[name]) == 1, name
        line = found[name][0]
        assert cls.description and cls.description in line  # the whole description, never cut
        assert "`" not in line and ":class:" not in line and ":mod:" not in line  # no reStructuredText


def test_cli_list_marks_every_method_whose_dependency_is_missing(capsys, monkeypatch):
    import deepcausal.baselines  # noqa: F401  (imported before the modules are hidden)

    monkeypatch.setitem(sys.modules, "sklearn", None)  # find_spec reports a module set to None as missing
    monkeypatch.setitem(sys.modules, "econml", None)
    assert cli.main(["bench", "--list"]) == 0
    found = _method_lines(capsys.readouterr().out)
    for name in ("naive", "naive_proxy", "sieve2sls", "kiv", "kpv", "pmmr"):
        assert "sklearn NOT INSTALLED: pip install scikit-learn" in found[name][0], found[name]
    for name in ("dmliv", "orthoiv", "driv", "sieve_tsls"):
        assert 'econml, sklearn NOT INSTALLED: pip install "deepcausal[econml]" scikit-learn' in found[name][0]
    for name in ("dfiv", "dfpv", "deepiv"):
        assert "NOT INSTALLED" not in found[name][0]


def test_cli_missing_dependency_is_one_line_before_any_fit(capsys, monkeypatch):
    from deepcausal import baselines

    fitted = []
    monkeypatch.setattr(baselines.DFIVMethod, "fit", lambda self, design: fitted.append(design))
    monkeypatch.setitem(sys.modules, "sklearn", None)
    rc = cli.main(["bench", "--design", "lowdim", "--n", "100", "--methods", "dfiv,naive", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and fitted == []
    assert err == ["deepcausal bench: error: method 'naive' needs sklearn, which is not installed: "
                   "pip install scikit-learn"]
    with pytest.raises(ImportError, match="^method 'naive' needs sklearn"):
        from deepcausal import baselines as b

        b.get("naive")
    assert "naive" not in baselines.available("iv") and "dfiv" in baselines.available("iv")


def test_cli_import_error_during_a_fit_is_one_line_not_a_traceback(capsys, monkeypatch):
    from deepcausal.baselines import _classic

    def broken(self, data):
        raise ModuleNotFoundError("No module named 'sklearn.ensemble'")

    monkeypatch.setattr(_classic.Naive, "_fit", broken)
    rc = cli.main(["bench", "--design", "lowdim", "--n", "100", "--methods", "naive", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    [line] = [ln for ln in err.splitlines() if "error" in ln]
    assert "No module named 'sklearn.ensemble'" in line


def test_cli_one_seed_run_shows_no_spread(tmp_path, capsys):
    md = tmp_path / "out.md"
    rc = cli.main(["bench", "--design", "lowdim", "--n", "200", "--seeds", "0", "--methods", "naive,sieve2sls",
                   "--markdown", str(md), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "sieve2sls" in out
    assert "nan" not in out.lower() and "mse_std" not in out
    assert "nan" not in md.read_text().lower() and "mse_std" not in md.read_text()


def test_markdown_shows_a_dash_where_one_method_has_one_seed():
    import pandas as pd

    df = pd.DataFrame({"design": "lowdim", "parameters": "n=100", "method": ["a", "a", "b"], "seed": [0, 1, 0],
                       "mse": [1.0, 2.0, 3.0], "fit_seconds": 0.1, "peak_rss_mb": 1.0})
    text = cli._markdown(df, "deepcausal bench")
    assert "mse_std" in text and "nan" not in text.lower()
    row_b = next(ln for ln in text.splitlines() if ln.startswith("| lowdim | b |"))
    assert "| – |" in row_b


def test_plot_gives_each_method_one_colour_in_every_panel(tmp_path):
    from matplotlib.colors import to_hex

    from deepcausal.benchmark import OKABE_ITO, plot

    predictions, designs = {}, {}

    def keep(row, pred, design):
        predictions[(row["design"], row["method"], row["seed"])] = pred
        designs[(row["design"], row["seed"])] = design

    methods = ["naive", "sieve2sls", "kiv"]
    df = run(["lowdim", "lowdim_linear"], methods, seeds=[0, 1], n=200, progress=False, on_result=keep)
    fig = plot(df, predictions, designs, tmp_path / "p.png")
    colours, panels = {m: set() for m in methods}, {m: set() for m in methods}
    for i, ax in enumerate(fig.axes):
        for line in ax.get_lines():
            if line.get_label() in colours:
                colours[line.get_label()].add(to_hex(line.get_color()))
                panels[line.get_label()].add(i)
        for coll in ax.collections:
            if coll.get_label() in colours:
                colours[coll.get_label()].update(to_hex(c) for c in coll.get_facecolors())
                panels[coll.get_label()].add(i)
    assert all(p == {0, 1, 2, 3} for p in panels.values()), panels  # curves and MSE strips of both designs
    assert all(len(c) == 1 for c in colours.values()), colours  # one colour per method, in every panel
    chosen = [next(iter(c)) for c in colours.values()]
    assert len(set(chosen)) == len(methods)  # methods told apart
    assert set(chosen) <= {c.lower() for c in OKABE_ITO}  # colour-blind-safe palette


def test_a_method_failing_on_a_design_is_recorded_and_the_run_goes_on(monkeypatch):
    from deepcausal.baselines import _classic

    def singular(self, data):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(_classic.Naive, "_fit", singular)
    df = run(["lowdim"], ["naive", "sieve2sls"], seeds=[0], n=200, progress=False)
    failed, ok = df.set_index("method").loc["naive"], df.set_index("method").loc["sieve2sls"]
    assert np.isnan(failed["mse"]) and "LinAlgError: Singular matrix" in failed["error"]
    assert np.isfinite(ok["mse"]) and ok["error"] == ""
