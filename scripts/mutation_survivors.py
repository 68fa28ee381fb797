"""One line per surviving mutant of a mutmut 3 run: its name, status, the changed line and why it
survives (a category read off the change). Run inside the scratch folder scripts/mutation.sh made.

    cd /tmp/phgmm-mutation/GROUP && python /path/to/scripts/mutation_survivors.py > survivors.md

The category is a first reading, by pattern, not a proof; "behaviour not asserted" marks what a new
test could kill.
"""

from __future__ import annotations

import re
import sys

from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
from mutmut.stats import status_by_exit_code

MESSAGE = re.compile(r"raise \w+|Error\(|warn|say\(|print\(|f\"|\.format\(|progress|lines\.append|label=|title")


def category(status: str, removed: str, added: str) -> str:
    """Why a mutant survives, from its status and its changed line."""
    if status == "no tests":
        return "no test of the group's files calls this function"
    if re.search(r"device=|\.to\(None\)|, \)", added) and not MESSAGE.search(removed):
        return "equivalent on the CPU: the device/dtype argument changes nothing where the tests run"
    if "validate_args" in added:
        return "equivalent: argument validation only"
    if re.search(r"encoding=|newline=", removed + added):
        return "equivalent: the file's encoding/newline handling gives the same text here"
    if (
        "XX" in added
        or added.replace("XX", "").lower() == removed.lower()
        or re.search(r"\(None\)", added)
        and MESSAGE.search(removed)
    ):
        if MESSAGE.search(removed) or MESSAGE.search(added):
            return "message or log text: tests match messages by search, not whole"
        return "string literal changed: no test compares this text"
    if MESSAGE.search(removed):
        return "inside a message, a log line or a figure label: not asserted"
    if re.search(r"(\d+)", removed) and re.sub(r"\d+", "N", removed) == re.sub(r"\d+", "N", added):
        return "a constant moved by one: behaviour at that boundary not asserted"
    return "behaviour not asserted"


def main() -> None:
    names = [line.split(":")[0].strip() for line in sys.stdin if ":" in line]
    for name in names:
        m = find_mutant(name)
        status = status_by_exit_code[m.exit_code_by_key[name]]
        diff = get_diff_for_mutant(name, path=m.path)
        removed = " ".join(x[1:].strip() for x in diff.splitlines() if x.startswith("-") and not x.startswith("---"))
        added = " ".join(x[1:].strip() for x in diff.splitlines() if x.startswith("+") and not x.startswith("+++"))
        # phgmm.pkg.mod.xǁClassǁmethod__mutmut_N → pkg.mod.Class.method__mutmut_N (a class name may end in x)
        short = name.replace("phgmm.", "").replace(".xǁ", ".").replace("ǁ", ".")
        print(f"- `{short}` ({status}): {category(status, removed, added)} — `{added[:110]}`")


if __name__ == "__main__":
    main()
