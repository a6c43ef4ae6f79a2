#!/usr/bin/env bash
# The comparison tables of benchmarks/RESULTS.md ("## Comparison suite"): every applicable method on
# lowdim, demand and demand_proxy, n = 5,000, seeds 0-2, one thread (the runner sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
for design in lowdim demand demand_proxy; do
  deepcausal bench --design "$design" --methods all --seeds 0,1,2 --n 5000 --no-progress \
    --json "benchmarks/compare/$design.json" --markdown "benchmarks/compare/$design.md" \
    --plot "benchmarks/compare/$design.png"
done
python benchmarks/compare_section.py
