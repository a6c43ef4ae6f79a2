"""benchmarks/bench_reference.py without the original code: its command line, its refusal of a directory that
does not hold the checkouts, and its report arithmetic (the benchmark itself needs the clones and minutes)."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_reference.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_checkout(root: Path, design: str, bench):
    for f in bench.NEEDED[design]:
        path = root / bench.REPOS[design] / f
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")


def test_arguments(bench, tmp_path):
    _fake_checkout(tmp_path, "dfpv", bench)
    args = bench.parse_args(["--reference-dir", str(tmp_path), "--seeds", "0,3", "--only", "dfpv"])
    assert args.seeds == [0, 3] and args.designs == ["dfpv"] and args.n == 5000 and args.n_epochs is None
    for bad in (["--only", "dfxx"], ["--seeds", "a,b"], ["--seeds", "1,1"], ["--n", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(["--reference-dir", str(tmp_path), "--only", "dfpv", *bad])


def test_missing_checkout_is_a_clear_error(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--reference-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "DeepFeatureIV" in err and "DeepFeatureProxyVariable" in err
    assert "git clone https://github.com/liyuan9988/DeepFeatureIV" in err
    # a design needs only its own checkout; a checkout without its trainer is refused by name
    _fake_checkout(tmp_path, "dfiv", bench)
    assert bench.check_reference_dir(tmp_path, ["dfiv"]) == []
    (tmp_path / "DeepFeatureIV" / bench.NEEDED["dfiv"][0]).unlink()
    problems = bench.check_reference_dir(tmp_path, ["dfiv", "dfpv"])
    assert len(problems) == 2 and problems[0].endswith("trainer.py")


def _rows(design, seeds, ref_s, ours_s):
    common = dict(design=design, n=5000, command="cmd", date="d", machine="m", deepcausal="v", reference="r",
                  test_set="t", load_1min=1.0, epochs=100, steps=100, steps_per_s=1.0, updates_per_s=1.0)
    return [dict(common, implementation=impl, seed=s, fit_s=sec, mse=float(s))
            for s, a, b in zip(seeds, ref_s, ours_s) for impl, sec in (("original", a), ("deepcausal", b))]


def test_ratio_is_median_original_over_median_ours(bench):
    df = pd.DataFrame(_rows("dfiv", [0, 1, 2], [30.0, 20.0, 10.0], [4.0, 5.0, 100.0]))
    text = bench.design_markdown(df, "dfiv")
    assert "| deepcausal, one default member | 5.0 | 1 | 4.00× |" in text  # 20 / 5
    assert "| 2 | 10.0 | 2 | 100.0 | 2 | 0.10× |" in text


def test_rerunning_one_design_keeps_the_other(bench):
    old = pd.DataFrame(_rows("dfiv", [0], [10.0], [5.0]) + _rows("dfpv", [0], [8.0], [2.0]))
    new = pd.DataFrame(_rows("dfpv", [0, 1], [6.0, 6.0], [3.0, 3.0]))
    merged = bench.merge_rows(old, new)
    assert sorted(merged["design"]) == ["dfiv"] * 2 + ["dfpv"] * 4
    text = bench.section_markdown(merged)
    assert text.startswith(bench.TITLE + "\n")
    assert "| deepcausal, one default member | 5.0 | 0 | 2.00× |" in text and "| deepcausal, one default member | 3.0 | 0.5 | 2.00× |" in text


def test_variants_are_checked_and_run_after_the_default_member(bench, tmp_path):
    _fake_checkout(tmp_path, "dfpv", bench)
    args = bench.parse_args(["--reference-dir", str(tmp_path), "--only", "dfpv", "--variants", "width8,iter221"])
    assert args.variants == ["width8", "iter221"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--reference-dir", str(tmp_path), "--only", "dfpv", "--variants", "width8,wide"])
    # a variant of the other design is skipped; the default member comes first, the ensemble last
    fits = bench._our_fits("dfpv", False, ["width8", "iter221"])
    assert [label for label, _ in fits] == ["deepcausal", "deepcausal width8", "deepcausal ensemble"]
    kwargs = fits[1][1]
    assert kwargs["n_estimators"] == 1
    net = kwargs["outcome_proxy_net"](3)
    assert net(torch.zeros(2, 3)).shape == (2, 8)
    assert [label for label, _ in bench._our_fits("dfiv", True, ["width8", "iter221"])] == [
        "deepcausal", "deepcausal iter221"]


def test_a_variant_gets_its_own_row_and_ratio(bench):
    rows = _rows("dfpv", [0, 1, 2], [30.0, 20.0, 10.0], [4.0, 5.0, 100.0])
    rows += [dict(r, implementation="deepcausal width8", fit_s=sec)
             for r, sec in zip([r for r in rows if r["implementation"] == "deepcausal"], [2.0, 4.0, 8.0])]
    text = bench.design_markdown(pd.DataFrame(rows), "dfpv")
    assert "| deepcausal, one default member | 5.0 | 1 | 4.00× |" in text
    assert "(`width8`) | 4.0 | 1 | 5.00× |" in text  # 20 / 4
    # the per-seed table still compares the default member only
    assert "| 2 | 10.0 | 2 | 100.0 | 2 | 0.10× |" in text
    # the section says what such rows are only when there are some
    assert "not the default" in bench.section_markdown(pd.DataFrame(rows)).split("###")[0]
    assert "not the default" not in bench.section_markdown(pd.DataFrame(_rows("dfpv", [0], [6.0], [3.0])))
