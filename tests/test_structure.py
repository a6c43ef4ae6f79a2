"""The package's architecture: module sizes, and imports that only go down its floors (no circle).

Every module sits on a floor; a module may import (at its top or inside a function) only from
lower floors, or from its own subpackage (``datasets``, ``baselines``), where the imports must not go
in a circle. The floors, from the bottom:
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "deepcausal"

FLOORS = [
    # 0: leaves
    {"_version", "_warnings"},
    # 1: numerics, data handling, networks, the designs
    {"_data", "heads", "nets", "optim", "_diagnostics", "_docstrings", "datasets", "_weak_iv", "_screen"},
    # 2: what is built on the solves: the two-stage heads, bands, collectives, formulas, modes
    {"twostage", "inference", "distributed", "formula", "_modes"},
    # 2½: the curves in t that two-stage least squares fits beside the networks (the line, Lepski's spline), and
    # the held-out rule's choice in words
    {"_sieve", "_verdicts"},
    # 3: services of a fit: persistence, ensembles, reports, plots, the public exceptions
    {"_persist", "ensemble", "results", "plotting", "_progress", "_complexity", "exceptions", "_stopping"},
    # 4: the estimator's rooms
    {"_inputs", "_training", "_reporting"},
    # 4½: ensemble members trained as one stacked computation, on top of one member's training
    {"_stacked"},
    # 5: the shared estimator
    {"_estimator"},
    # 6: the estimators
    {"iv", "proxy", "regression", "operators"},
    # 7: what uses the estimators
    {"selection", "baselines"},
    # 8: the benchmark runner
    {"benchmark"},
    # 9: entry points and the package itself
    {"cli", "demo", "__init__"},
]
MAX_LINES = 600


def _modules():
    """Module name relative to the package (``"iv"``, ``"datasets._demand"``, ``"__init__"``) → path."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _floor(module: str) -> int:
    top = module.split(".")[0]
    for i, floor in enumerate(FLOORS):
        if top in floor:
            return i
    raise AssertionError(f"deepcausal.{module} is on no floor: add it to FLOORS in {__file__}")


def _imports(module: str):
    """The package modules that ``module`` imports anywhere in its code (also inside functions)."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" and module != "__init__" else module.split(".")[:-1]
    if module == "__init__":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith("deepcausal"):
                    continue
                base = (node.module or "").split(".")[1:]
            else:
                base = package[: len(package) - (node.level - 1)] + ((node.module or "").split(".") if node.module else [])
            for alias in node.names:
                candidate = ".".join(base + [alias.name])
                target = candidate if candidate in MODULES else ".".join(base)
                found.add(target or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "deepcausal":
                    found.add(".".join(alias.name.split(".")[1:]) or "__init__")
    resolved = set()
    for target in found:
        while target not in MODULES and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in MODULES and target != module:
            resolved.add(target)
    return resolved


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_module_is_on_a_floor():
    for module in MODULES:
        _floor(module)


def test_imports_only_go_down_the_floors():
    upward = []
    for module, targets in GRAPH.items():
        for target in targets:
            same_package = target.split(".")[0] == module.split(".")[0] and "__init__" not in (module, target)
            if not same_package and _floor(target) >= _floor(module):
                upward.append(f"deepcausal.{module} (floor {_floor(module)}) imports deepcausal.{target} "
                              f"(floor {_floor(target)})")
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    state, stack, circles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in GRAPH[m]:
            if state.get(t) == "open":
                circles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in GRAPH:
        if m not in state:
            visit(m)
    assert not circles, "\n".join(circles)


def test_the_checker_sees_imports_inside_functions():
    """The parser finds imports inside functions and relative ones: the test above can fail."""
    assert "_estimator" in GRAPH["iv"] and "_training" in GRAPH["_estimator"]
    assert "iv" in GRAPH["baselines._adapters"]  # imported inside a function
    assert _floor("_estimator") > _floor("_training")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_600_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"deepcausal.{module} has {lines} lines (at most {MAX_LINES})"
