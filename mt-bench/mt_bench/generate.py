"""Answer the MT-bench questions with a Hugging Face model, as FastChat's gen_model_answer.py does.

Both turns of each question are answered in one conversation (the first answer is in the context of
the second), at FastChat's per-category temperature (greedy below 1e-4; top_p/top_k from the model's
generation_config, as in FastChat). Greedy categories are answered in batches of questions of one
category; a sampled category's questions one at a time, each seeded with --seed + the choice index
as FastChat seeds every question, so --batch_size never changes an answer. Answers go to
<out_dir>/model_answer/<model_id>.jsonl in FastChat's format, appended batch by batch; a rerun skips
the question ids already there, so an interrupted run (Ctrl-C, SIGTERM, a crash) loses at most the
batch being answered. The model sits on one --device, or is spread over the GPUs by --device_map
auto (--max_gpu_memory caps each); --load_8bit loads 8-bit weights (bitsandbytes), as FastChat's
options do.

    python -m mt_bench.generate --model_path meta-llama/Meta-Llama-3-8B --model_id llama3-8b-base \\
        --template default --data_dir ../shared/data/mt_bench

`--model_path` may be a hub name, a local directory or a LoRA adapter directory (its base model is read
from adapter_config.json, or given with --base_model; the adapter is merged for generation). A hub
name is checked before anything is loaded: when the hub cannot be reached, only the local cache is
tried, so a model that is not there is an error at once rather than minutes of retries.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import httpx
import shortuuid
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub.utils import HFValidationError, validate_repo_id
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from mt_bench import cli
from mt_bench.cli import Interrupted, UsageError
from mt_bench.data import (
    OUTPUT_DIR,
    TEMPERATURE,
    append_jsonl,
    questions_to_answer,
    reorg_answers,
)
from mt_bench.templates import Prompter, check_template, make_prompter


@dataclass
class GenerateArgs:
    model_path: str = field(metadata={"help": "hub name, local model dir or LoRA adapter dir"})
    model_id: str = field(metadata={"help": "name of the model in the answer file and the results"})
    template: str = field(
        default="default", metadata={"help": "default|alpaca|llama2|llama3|chat_template|fschat|fschat:<name>"}
    )
    system_message: str | None = field(default=None, metadata={"help": "replaces the template's system message"})
    data_dir: str | None = field(default=None, metadata={"help": "dir with question.jsonl (default: FastChat's)"})
    out_dir: str = field(
        default=str(OUTPUT_DIR), metadata={"help": "answers go to <out_dir>/model_answer/<model_id>.jsonl"}
    )
    answer_file: str | None = field(
        default=None, metadata={"help": "explicit answer file instead of the one in out_dir"}
    )
    base_model: str | None = field(
        default=None, metadata={"help": "base of a LoRA adapter (default: adapter_config.json's)"}
    )
    max_new_tokens: int = field(default=1024, metadata={"help": "answer length limit per turn (FastChat: 1024)"})
    batch_size: int = field(default=8, metadata={"help": "questions answered together"})
    num_choices: int = field(default=1, metadata={"help": "answers per question"})
    dtype: str = field(
        default="auto", metadata={"help": "weights' dtype", "choices": ["auto", "bfloat16", "float16", "float32"]}
    )
    device: str = field(default="auto", metadata={"help": "auto (cuda if available), cpu, cuda, cuda:1, ..."})
    device_map: str | None = field(
        default=None, metadata={"help": "spread the model over the GPUs instead: auto, balanced, sequential"}
    )
    max_gpu_memory: str | None = field(
        default=None, metadata={"help": "with --device_map: the most memory per GPU, e.g. 20GiB (FastChat's)"}
    )
    load_8bit: bool = field(default=False, metadata={"help": "8-bit weights, through bitsandbytes (FastChat's)"})
    cpu_offloading: bool = field(
        default=False, metadata={"help": "with --load_8bit: what does not fit the GPUs stays on the CPU (FastChat's)"}
    )
    seed: int = field(default=0, metadata={"help": "sampling seed (choice i uses seed + i, as FastChat's i)"})
    question_begin: int | None = field(default=None, metadata={"help": "slice of the questions: first index"})
    question_end: int | None = field(default=None, metadata={"help": "slice of the questions: end index"})

    def __post_init__(self):  # checked before the model is loaded
        for name in ("max_new_tokens", "batch_size", "num_choices"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} {getattr(self, name)}: must be at least 1")
        try:
            check_template(self.template)
        except ValueError as e:
            raise UsageError(f"--template: {e}") from None
        if self.device != "auto":
            try:
                device = torch.device(self.device)
            except RuntimeError:
                raise UsageError(f"--device {self.device}: not a device; use auto, cpu, cuda or cuda:N") from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise UsageError(f"--device {self.device}: no CUDA GPU here; use --device cpu (or auto)")
        if self.device_map and self.device != "auto":
            raise UsageError(f"--device_map {self.device_map} places the model itself: leave out --device")
        if self.max_gpu_memory and not self.device_map:
            raise UsageError("--max_gpu_memory: goes with --device_map (e.g. --device_map auto)")
        if self.cpu_offloading and not (self.load_8bit and self.device_map):
            raise UsageError("--cpu_offloading: goes with --load_8bit and --device_map, as in FastChat")


def hub_offline(path: str, flag: str) -> bool:
    """Whether `path`, not a local one, must come from the Hugging Face cache alone (the hub cannot be
    reached); a UsageError when it is neither a local path nor a hub name."""
    if Path(path).exists():
        return False
    try:
        validate_repo_id(path)
    except HFValidationError:
        raise UsageError(f"{flag} {path}: no such directory (nor a hub name, owner/name)") from None
    if hub_constants.HF_HUB_OFFLINE:
        return True
    try:
        httpx.head(hub_constants.ENDPOINT, timeout=10)
    except httpx.TransportError:
        return True
    return False


def from_pretrained(auto_class, path: str, flag: str, **kwargs):
    """auto_class.from_pretrained(path), a failure being a UsageError that says what to pass instead."""
    offline = hub_offline(path, flag)
    if offline and auto_class is AutoModelForCausalLM:  # transformers does not pass it on to its adapter lookup
        kwargs["adapter_kwargs"] = {"local_files_only": True}
    try:
        return auto_class.from_pretrained(path, local_files_only=offline, **kwargs)
    except (OSError, ValueError, ImportError) as e:  # ImportError: e.g. --load_8bit without bitsandbytes
        if offline:
            raise UsageError(
                f"{flag} {path}: not found locally and there is no network: pass a local model directory"
            ) from e
        first_line = (str(e).strip() or type(e).__name__).splitlines()[0]
        raise UsageError(f"{flag} {path}: cannot load it ({first_line})") from e


def load_kwargs(args: GenerateArgs) -> dict:
    """from_pretrained's placement and precision arguments for the model (not its tokenizer)."""
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    kwargs = {
        "dtype": args.dtype if args.dtype == "auto" else getattr(torch, args.dtype),
        # Loaded straight onto its device(s): 8-bit weights cannot be moved there afterwards.
        "device_map": args.device_map or {"": device},
    }
    if args.max_gpu_memory:
        kwargs["max_memory"] = {i: args.max_gpu_memory for i in range(torch.cuda.device_count())}
    if args.load_8bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=args.cpu_offloading
        )
    return kwargs


def load_model(args: GenerateArgs):
    """Model and left-padding tokenizer; a LoRA adapter dir is loaded onto its base and merged."""
    model_path, kwargs = args.model_path, load_kwargs(args)
    adapter_config = Path(model_path) / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftModel

        base, flag = args.base_model, "--base_model"
        if not base:
            base, flag = _adapter_base(adapter_config), f"{adapter_config}: base_model_name_or_path"
        model = from_pretrained(AutoModelForCausalLM, base, flag, **kwargs)
        model = PeftModel.from_pretrained(model, model_path).merge_and_unload()
        has_tokenizer = any((Path(model_path) / f).is_file() for f in ("tokenizer.json", "tokenizer.model"))
        tokenizer_path, tokenizer_flag = (model_path, "--model_path") if has_tokenizer else (base, flag)
        tokenizer = from_pretrained(AutoTokenizer, tokenizer_path, tokenizer_flag)
    else:
        model = from_pretrained(AutoModelForCausalLM, model_path, "--model_path", **kwargs)
        tokenizer = from_pretrained(AutoTokenizer, model_path, "--model_path")
    tokenizer.padding_side = "left"  # generation continues at the right end of every row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def _adapter_base(adapter_config: Path) -> str:
    try:
        base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (ValueError, AttributeError):  # not JSON, not UTF-8 (both ValueErrors), not an object
        base = None
    if not isinstance(base, str) or not base:
        raise UsageError(f"{adapter_config}: no base_model_name_or_path in it: pass --base_model")
    return base


@torch.inference_mode()
def complete(
    model, tokenizer, prompter: Prompter, prompts: list[str], temperature: float, max_new_tokens: int
) -> list[str]:
    """One answer per prompt, cut at the first stop token or stop string and stripped."""
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=prompter.add_special_tokens)
    batch = batch.to(model.device)
    # Stop strings that are single tokens (e.g. <|eot_id|>) stop generation as token ids.
    vocab = tokenizer.get_vocab()
    model_eos = model.generation_config.eos_token_id  # e.g. Llama 3 Instruct's <|eot_id|> besides <|end_of_text|>
    model_eos = model_eos if isinstance(model_eos, list) else [model_eos]
    stop_ids = {
        tokenizer.eos_token_id,
        *model_eos,
        *prompter.stop_token_ids,
        *(vocab[s] for s in prompter.stop if s in vocab),
    }
    stop_ids.discard(None)
    text_stops = [s for s in prompter.stop if s not in vocab]
    # As in FastChat: greedy below 1e-4, else sampling at the category's temperature with the model's
    # own generation_config for the rest (top_p, top_k).
    kwargs = dict(
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=sorted(stop_ids),
        do_sample=temperature >= 1e-4,
    )
    if kwargs["do_sample"]:
        kwargs["temperature"] = temperature
    if text_stops:
        kwargs.update(stop_strings=text_stops, tokenizer=tokenizer)
    output = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
    answers = []
    for row in output.tolist():
        ends = [i for i, t in enumerate(row) if t in stop_ids]
        text = tokenizer.decode(row[: ends[0]] if ends else row, skip_special_tokens=True)
        cuts = [i for i in (text.find(s) for s in prompter.stop) if i >= 0]
        answers.append((text[: min(cuts)] if cuts else text).strip())
    return answers


def make_batches(questions: list[dict], size: int) -> list[list[dict]]:
    """Runs of consecutive questions of one category (one temperature each), at most `size` long;
    one question each where the category is sampled, so that it gets its own seed, as in FastChat
    (a batch would share one random stream, and its answers would depend on --batch_size)."""
    batches = []
    for category, run in groupby(questions, key=lambda q: q["category"]):
        group, n = list(run), size if TEMPERATURE.get(category, 0.7) < 1e-4 else 1
        batches += [group[i : i + n] for i in range(0, len(group), n)]
    return batches


def answer_batch(model, tokenizer, prompter: Prompter, questions: list[dict], args: GenerateArgs) -> list[dict]:
    """FastChat model_answer records for questions of one category, all turns in one conversation."""
    temperature = TEMPERATURE.get(questions[0]["category"], 0.7)
    choices = [[] for _ in questions]
    for index in range(args.num_choices):
        torch.manual_seed(args.seed + index)  # per question when sampling: see make_batches
        answers = [[] for _ in questions]
        for turn in range(max(len(q["turns"]) for q in questions)):
            rows = [i for i, q in enumerate(questions) if turn < len(q["turns"])]
            prompts = [prompter.render(questions[i]["turns"][: turn + 1], answers[i]) for i in rows]
            texts = complete(model, tokenizer, prompter, prompts, temperature, args.max_new_tokens)
            for i, text in zip(rows, texts, strict=True):
                answers[i].append(text)
        for i in range(len(questions)):
            choices[i].append({"index": index, "turns": answers[i]})
    return [
        {
            "question_id": q["question_id"],
            "answer_id": shortuuid.uuid(),
            "model_id": args.model_id,
            "choices": c,
            "tstamp": time.time(),
        }
        for q, c in zip(questions, choices, strict=True)
    ]


def generate(args: GenerateArgs) -> Path:
    answer_file = Path(args.answer_file or Path(args.out_dir) / "model_answer" / f"{args.model_id}.jsonl")
    todo = questions_to_answer(args.data_dir, args.question_begin, args.question_end, answer_file, args.model_id)
    if todo:
        model, tokenizer = load_model(args)
        try:
            prompter = make_prompter(args.template, tokenizer, args.model_id, args.system_message)
        except ValueError as e:  # the one thing check_template could not know: a tokenizer without a chat template
            raise UsageError(str(e)) from None
        answered = 0
        try:
            with tqdm(total=len(todo), desc=f"answering ({args.model_id})", unit="question") as bar:
                for batch in make_batches(todo, args.batch_size):
                    append_jsonl(answer_file, answer_batch(model, tokenizer, prompter, batch, args))
                    answered += len(batch)
                    bar.update(len(batch))
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted: {answered} of {len(todo)} questions answered now and saved in "
                f"{answer_file}; a rerun of the same command continues where it stopped"
            ) from None
    reorg_answers(answer_file)
    return answer_file


def main(argv: list[str] | None = None) -> Path:
    return generate(cli.parse_args(GenerateArgs, argv))


if __name__ == "__main__":
    cli.run(main)
