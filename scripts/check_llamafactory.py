"""LLaMA-Factory's `use_badam` on this package and on the published one, side by side.

    .venv/bin/python scripts/check_llamafactory.py [--report .bench/llamafactory.md] [--steps 8]

Builds (once) a throwaway virtual environment `.venv-llamafactory` with torch 2.13 and LLaMA-Factory
0.9.5, a tiny random Llama (2 layers, hidden 128, the llama-alpaca offline tokenizer) and a
dataset_info.json over the shared Alpaca-GPT4 sample. Then `llamafactory-cli train` runs
`badam_mode: layer` and `ratio` with this repository's badam installed, and again with the
published badam 1.4, on the same data, seed and settings. It checks that every run trains (the loss
falls, grad_norm is logged and positive at every step) and that the first step's grad_norm, the
norm of the same gradients, is equal in both packages to 1e-5; the table shows the later steps,
where the two part ways by design (see the badam README, "Migrating from the published package").
Exits 1 when a check fails, 0 when all pass (or, saying why, when the shared data is absent).

No torchaudio wheel matches torch 2.13, and LLaMA-Factory imports it for audio inputs only: the
environment gets an empty stand-in module instead (torchvision is left out, transformers does not
need it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-llamafactory"
SAMPLE = ROOT.parent / "shared" / "data" / "alpaca_gpt4" / "alpaca_gpt4_en_sample.json"
TORCH, LLAMAFACTORY, PUBLISHED = "torch==2.13.0", "llamafactory==0.9.5", "badam==1.4"


def pip(*args: str) -> None:
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


def make_environment() -> None:
    python = VENV / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([str(python), "-c", "import llamafactory"], capture_output=True).returncode == 0
    ):
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    index = ["--extra-index-url", os.environ["TORCH_INDEX_URL"]] if os.environ.get("TORCH_INDEX_URL") else []
    # torch pinned in the same command, or pip resolves LLaMA-Factory's own torch (a CUDA build).
    pip("install", TORCH, LLAMAFACTORY, *index)
    pip("uninstall", "-y", "torchvision", "torchaudio")
    site = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stand_in = Path(site) / "torchaudio"
    stand_in.mkdir(exist_ok=True)
    (stand_in / "__init__.py").write_text(
        '"""Stand-in: no torchaudio wheel matches torch 2.13 (see scripts/check_llamafactory.py)."""\n'
    )


def make_model(folder: Path) -> None:
    """A tiny random Llama with the offline tokenizer of llama-alpaca, saved as a model directory."""
    sys.path.insert(0, str(ROOT / "llama-alpaca"))
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from alpaca_sft.model import demo_tokenizer

    tokenizer = demo_tokenizer(512)
    # Hidden 128: every tensor has at least ratio mode's 100 entries, so both packages mask all alike.
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def run(work: Path, mode: str, package: str, steps: int) -> list[dict]:
    output = work / f"out-{package}-{mode}"
    config = {
        "model_name_or_path": str(work / "model"),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "use_badam": True,
        "badam_mode": mode,
        "badam_switch_mode": "ascending",
        "badam_switch_interval": 2,
        "badam_update_ratio": 0.5,
        "badam_mask_mode": "adjacent",
        "badam_verbose": 0,
        "dataset": "alpaca_gpt4_sample",
        "dataset_dir": str(work / "data"),
        "template": "default",
        "cutoff_len": 128,
        "max_samples": 64,
        "overwrite_cache": True,
        "output_dir": str(output),
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "max_steps": steps,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": 0,
        # The published ratio mode takes no `fused` argument, which the default optim would pass.
        "optim": "adamw_torch",
    }
    path = work / f"{package}-{mode}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    log = work / f"{package}-{mode}.log"
    with log.open("w") as out:
        result = subprocess.run(
            [str(VENV / "bin" / "llamafactory-cli"), "train", str(path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
            timeout=900,
        )
    if result.returncode != 0:
        sys.exit(f"llamafactory-cli train failed ({package}, {mode}); the end of {log}:\n{log.read_text()[-3000:]}")
    history = json.loads((output / "trainer_state.json").read_text())["log_history"]
    return [h for h in history if "loss" in h]


def report(runs: dict[tuple[str, str], list[dict]], steps: int) -> tuple[str, list[str]]:
    lines, failures = [], []
    for mode in ("layer", "ratio"):
        ours, published = runs[("ours", mode)], runs[("published", mode)]
        lines += [
            f"### badam_mode: {mode}",
            "",
            "| step | loss (this package) | loss (badam 1.4) | grad_norm (this package) | grad_norm (badam 1.4) |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {a['step']} | {a['loss']:.4f} | {b['loss']:.4f} | {a['grad_norm']:.6f} | {b['grad_norm']:.6f} |"
            for a, b in zip(ours, published)
        ]
        lines.append("")
        for package, logs in (("this package", ours), ("badam 1.4", published)):
            if len(logs) != steps or not all(h["grad_norm"] > 0 for h in logs):
                failures.append(
                    f"{mode}, {package}: {len(logs)} logged steps, grad_norm {[h['grad_norm'] for h in logs]}"
                )
            if not sum(h["loss"] for h in logs[-3:]) < sum(h["loss"] for h in logs[:3]):
                failures.append(f"{mode}, {package}: the loss did not fall")
        first = abs(ours[0]["grad_norm"] - published[0]["grad_norm"]) / published[0]["grad_norm"]
        if first > 1e-5:
            failures.append(
                f"{mode}: step 1 grad_norm {ours[0]['grad_norm']} vs the published {published[0]['grad_norm']}"
            )
    return "\n".join(lines), failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", default=str(ROOT / ".bench" / "llamafactory.md"), help="Markdown report path")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    args = parser.parse_args()
    if not SAMPLE.is_file():
        print(f"skipped: the Alpaca-GPT4 sample is not at {SAMPLE} (the repository's ../shared/data)")
        return
    make_environment()
    work = Path(tempfile.mkdtemp(prefix="llamafactory-"))
    try:
        make_model(work / "model")
        (work / "data").mkdir()
        (work / "data" / "dataset_info.json").write_text(json.dumps({"alpaca_gpt4_sample": {"file_name": str(SAMPLE)}}))
        runs = {}
        for package, spec in (("ours", ["-e", str(ROOT / "badam")]), ("published", [PUBLISHED])):
            pip("install", "--no-deps", "--force-reinstall", *spec)
            for mode in ("layer", "ratio"):
                runs[(package, mode)] = run(work, mode, package, args.steps)
        pip("install", "--no-deps", "--force-reinstall", "-e", str(ROOT / "badam"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table, failures = report(runs, args.steps)
    text = (
        f"LLaMA-Factory 0.9.5, `llamafactory-cli train`, use_badam, {args.steps} steps of batch 4 on the "
        f"Alpaca-GPT4 sample; a 2-layer Llama (hidden 128), fp32 on CPU, lr 1e-3, K = 2, update_ratio 0.5.\n\n{table}\n"
        + ("\nAll checks passed.\n" if not failures else "\nFAILED:\n" + "\n".join(f"- {f}" for f in failures) + "\n")
    )
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text)
    print(text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
