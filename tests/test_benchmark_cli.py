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
    assert list(df.columns) == ["design", "parameters", "method", "seed", "mse", "fit_seconds", "peak_rss_mb"]
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
