"""benchmarks/_results.py, the helpers every benchmark script writes its rows and its RESULTS section with."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "_results.py"


@pytest.fixture(scope="module")
def results():
    spec = importlib.util.spec_from_file_location("bench_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_append_row_writes_the_header_once_and_the_rows_in_column_order(results, tmp_path):
    csv = tmp_path / "rows.csv"
    results.append_row(csv, {"b": 2, "a": 1}, ["a", "b"])
    results.append_row(csv, {"a": 3, "b": 4, "ignored": 5}, ["a", "b"])
    assert csv.read_text().splitlines() == ["a,b", "1,2", "3,4"]


def test_a_sharded_run_leaves_the_results_section_to_summarise_only(results, tmp_path, monkeypatch):
    written, ran = [], []
    monkeypatch.setattr(results, "write_section", lambda title, text: written.append((title, text)))
    monkeypatch.setattr(results, "single_thread", lambda: None)
    run = lambda i, k: ran.append((i, k))  # noqa: E731
    results.sharded_main("doc", "## T", run, lambda: "text", ["--shard", "1/2"])
    results.sharded_main("doc", "## T", run, lambda: "text", ["--shard", "0/2"])
    assert ran == [(1, 2), (0, 2)] and written == []
    results.sharded_main("doc", "## T", run, lambda: "text", ["--summarise-only"])
    assert ran == [(1, 2), (0, 2)] and written == [("## T", "text")]
    results.sharded_main("doc", "## T", run, lambda: "text", [])
    assert ran[-1] == (0, 1) and len(written) == 2
