"""The CPU report: every part's section, in the paper's order, in one Markdown file beside their PNGs.

    python scripts/reproduce/report.py OUT_DIR --preset default

Each part (scripts/reproduce/<part>.sh) writes OUT_DIR/<part>/section.md; a missing one is an error
naming the script that makes it. The header records the small bases' recipes (their recipe.json).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from badam.atomic import atomic_write_text

SMOKE = ": a smoke run of every script, whose numbers mean nothing"
PARTS = ("table1_memory", "backward_time", "convergence", "superglue", "mt_bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--bases", nargs="+", type=Path, default=[], help="the small bases' dirs (their recipe.json)")
    args = parser.parse_args()
    missing = [p for p in PARTS if not (args.out / p / "section.md").is_file()]
    if missing:
        raise SystemExit("error: no section from " + ", ".join(f"scripts/reproduce/{p}.sh" for p in missing))
    bases = []
    for base in args.bases:
        recipe = json.loads((base / "recipe.json").read_text())
        bases.append(
            f"- `{base.name}`: {recipe['parameters']:,} parameters, pretrained on `{Path(recipe['data']).name}` "
            f"(sha256 {recipe['data_sha256']}); held-out loss {recipe['heldout_loss_untrained']:.2f} untrained -> "
            f"{recipe['heldout_loss_pretrained']:.2f} pretrained; recipe {json.dumps(recipe['recipe'])}"
        )
    minimal = args.preset == "minimal"
    header = f"""# BAdam's tables at CPU scale

Made by `bash scripts/reproduce_cpu.sh{" --minimal" if minimal else ""}` (preset `{args.preset}`{SMOKE if minimal else ""}),
torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}. Each table stands next to the
paper's figure (../shared/paper.md); each section names the command that made it. The models are small
pretrained bases made here (`scripts/small_base.py`):

{chr(10).join(bases)}
"""
    sections = [(args.out / p / "section.md").read_text() for p in PARTS]
    atomic_write_text(args.out / "report.md", "\n".join([header, *sections]))
    print(args.out / "report.md")


if __name__ == "__main__":
    main()
