"""Copy the recorded results into docs/benchmarks.md, between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``.

NAME is a file stem in benchmarks/results (cpu, cuda, profile-cpu, profile-cuda); a block whose
file does not exist says so. Run by benchmarks/run.sh; safe to re-run.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(.*?)(<!-- /bench:(?P=name) -->)", re.S)


def fill(text: str) -> str:
    def repl(m: re.Match) -> str:
        src = RESULTS / f"{m['name']}.md"
        if src.is_file():
            body = src.read_text().rstrip() + "\n"
        else:
            body = f"_Not recorded yet: `benchmarks/results/{src.name}` is made by `benchmarks/run.sh`"
            body += " on a machine with a CUDA GPU._\n" if "cuda" in m["name"] else "._\n"
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(repl, text)


def main() -> None:
    text = DOC.read_text()
    new = fill(text)
    DOC.write_text(new)
    names = [m["name"] for m in BLOCK.finditer(new)]
    print(f"updated {DOC.relative_to(ROOT)}: blocks {names}")


if __name__ == "__main__":
    main()
