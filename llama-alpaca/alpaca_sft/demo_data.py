"""A small instruction set (`--dataset demo`): deterministic and learnable by a tiny model in minutes on CPU.

Four string tasks (reverse, uppercase, sort the letters, add two numbers) phrased as Alpaca records,
so the loss of a short run means something; the tests train on it, and config-built models' tokenizer
is trained on it (alpaca_sft.model). The demo itself uses the real Alpaca-GPT4 sample on a pretrained
base (configs/demo.yaml). Regenerate the shipped file with

    python -m alpaca_sft.demo_data            # writes data/demo_instructions.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from badam.atomic import atomic_write_text

OUT = Path(__file__).resolve().parents[1] / "data" / "demo_instructions.jsonl"
LETTERS = "abcdefghij"  # a small alphabet keeps every task learnable by a tiny model


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))


def make_record(rng: random.Random) -> dict[str, str]:
    task = rng.randrange(4)
    if task == 3:
        a, b = rng.randint(0, 49), rng.randint(0, 49)
        return {"instruction": "Add the two numbers.", "input": f"{a} + {b}", "output": str(a + b)}
    word = _word(rng)
    instruction, output = [
        ("Reverse the word.", word[::-1]),
        ("Write the word in capital letters.", word.upper()),
        ("Sort the letters of the word.", "".join(sorted(word))),
    ][task]
    return {"instruction": instruction, "input": word, "output": output}


def make_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [make_record(rng) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in make_records(args.n)))
    print(f"wrote {args.n} records to {args.out}")


if __name__ == "__main__":
    main()
