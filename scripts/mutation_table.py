"""The score table of docs/results/mutation/README.md from each group's stats.json (mutmut 3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(root: str = "docs/results/mutation") -> None:
    print("| group | mutants | killed | survived | no tests | timeout | score (killed ÷ all) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for stats in sorted(Path(root).glob("*/stats.json")):
        s = json.loads(stats.read_text())
        done = s["killed"] + s["survived"] + s["no_tests"] + s["timeout"] + s["suspicious"] + s["segfault"]
        if not done:
            continue
        score = (s["killed"] + s["timeout"]) / done
        print(
            f"| {stats.parent.name} | {done} | {s['killed']} | {s['survived']} | {s['no_tests']} | "
            f"{s['timeout']} | {100 * score:.1f} % |"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
