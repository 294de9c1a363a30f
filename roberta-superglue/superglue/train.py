"""Fine-tune an encoder on one SuperGLUE task with one optimizer, the way the BAdam paper does.

    python -m superglue.train --config configs/paper.yaml --task rte --optimizer block \\
        --data_dir ../shared/data/superglue

Protocol: train on the train split; split the official validation set into its first N examples
(selection) and the rest (test); evaluate on the selection part every `eval_steps` and at the end,
keep the best weights (superglue.selection), then report the best model's metrics on the test part
in `<output_root>/<run_name>/results.json` (written atomically).

Settings come from the dataclass defaults below, then the YAML config (its top level, then its
`tasks.<task>` section), then the command line.

Reruns (superglue.run_dir): a rerun of an unfinished run resumes from its newest complete checkpoint
(incomplete ones are skipped, saying why); a finished run (results.json present) is not run again;
a rerun into a directory written with other settings is refused, naming them (`--overwrite` deletes
the directory first). Checkpoints appear only when whole, and SIGTERM or Ctrl-C finishes the step,
writes a checkpoint and exits with 128 + the signal (badam.hf_checkpoint). Errors a user can fix
print one line and exit 2 (superglue.cli; `--debug` shows the traceback).
"""

import importlib.util
import os
import random
import sys
import time
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from transformers import AutoTokenizer, HfArgumentParser, Trainer, TrainingArguments, set_seed

from badam.hf import clip_ratio_gradients
from badam.hf_checkpoint import ResumableTrainerMixin
from superglue.cli import DEBUG_HELP, check_choice, run_cli
from superglue.data import TRAIN_FILES, load_examples
from superglue.encoding import Featurizer
from superglue.files import base_config, read_json, read_yaml, write_json_atomic
from superglue.metrics import task_metrics
from superglue.model import Collator, TaskModel, check_model, load_pretrained
from superglue.optim import BLOCK_LISTS, check_optimizer, prepare
from superglue.run_dir import RunIdentity, check_checkpoint, claim, record, resume_point, run_directory, run_identity
from superglue.selection import BestModel, EvaluateAtEnd
from superglue.tasks import MULTIRC_SPLITS, TASKS, Encoded, Task, get_task, split_validation

OUTPUT_ROOT = Path(__file__).resolve().parents[1] / "outputs"
# Top-level config sections that are not run settings: read by superglue.aggregate, or the base config.
CONFIG_SECTIONS = ("tasks", "methods", "columns", "paper", "extends")
# Flags that only the command line sets: what to run, and the one that deletes a run directory.
COMMAND_LINE_ONLY = ("task", "optimizer", "config", "overwrite")
RESUME_HINT = "the same command (a rerun continues from the newest complete checkpoint)"


@dataclass
class RunArgs:
    task: str = field(metadata={"help": "boolq, copa, multirc, rte, wic or wsc (jiant's task names)"})
    optimizer: str = field(metadata={"help": "adam, lora, block (BAdam) or sparse (BAdam's ratio variant)"})
    config: str | None = field(default=None, metadata={"help": "YAML defaults (configs/paper.yaml); flags override"})
    model_name: str = field(default="FacebookAI/roberta-large", metadata={"help": "encoder: hub name or local dir"})
    data_dir: str | None = field(default=None, metadata={"help": "dir of <Task>/train.jsonl, val.jsonl; none: the hub"})
    train_file: str = field(
        default=TRAIN_FILES, metadata={"help": "training file in the task dir (a,b: the first found)"}
    )
    output_root: str = field(default=str(OUTPUT_ROOT), metadata={"help": "runs go to <output_root>/<run_name>/"})
    run_name: str | None = field(default=None, metadata={"help": "a folder name (<task>-<optimizer>-seed<seed>)"})
    overwrite: bool = field(default=False, metadata={"help": "delete <output_root>/<run_name>/ first and start afresh"})
    seed: int = field(
        default=0, metadata={"help": "seed of the head's init, dropout and data order; -1: draw one (official)"}
    )
    max_seq_length: int = field(default=256, metadata={"help": "tokens per input (jiant's default 256)"})
    learning_rate: float = field(default=1e-5, metadata={"help": "peak learning rate"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "decay after warmup (Trainer's names)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of the steps spent warming up"})
    batch_size: int = field(default=16, metadata={"help": "training batch size"})
    eval_batch_size: int = field(default=64, metadata={"help": "evaluation batch size"})
    num_train_epochs: float = field(default=32, metadata={"help": "passes over the training set"})
    max_steps: int = field(default=-1, metadata={"help": "if > 0, train this many steps instead of epochs"})
    weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW weight decay (not on biases/norms; jiant's 0.01)"}
    )
    adam_beta1: float = field(default=0.9, metadata={"help": "Adam beta1"})
    adam_beta2: float = field(default=0.999, metadata={"help": "Adam beta2"})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "Adam epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (jiant's 1.0); 0 disables"})
    eval_steps: int = field(default=100, metadata={"help": "evaluate on the selection split every this many steps"})
    multirc_split: str = field(
        default="option", metadata={"help": "MultiRC's selection part: N answer options (official) or N questions"}
    )
    save_steps: int = field(default=500, metadata={"help": "full checkpoint (for resuming) every this many steps"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every this many steps"})
    train_last_layer: bool = field(
        default=True, metadata={"help": "keep the fresh pooler and head trainable throughout"}
    )
    switch_every: int = field(default=100, metadata={"help": "K: steps before block/sparse switch what trains"})
    switch_mode: str = field(
        default="ascending", metadata={"help": "block order: ascending, descending, random, fixed"}
    )
    block_list: str = field(
        default="official", metadata={"help": "block: official (layers, pooler, head) or layers (see README)"}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA alpha; none: 4 x rank (official)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["query", "value"], metadata={"help": "LoRA targets (peft's default for RoBERTa)"}
    )
    lora_pooler: bool = field(default=False, metadata={"help": "LoRA: train the pooler in full (official: frozen)"})
    update_ratio: float = field(default=0.1, metadata={"help": "sparse: share of each tensor that trains"})
    mask_mode: str = field(default="adjacent", metadata={"help": "sparse: adjacent or scatter"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast (GPU)"})
    max_train_examples: int | None = field(
        default=None, metadata={"help": "smoke runs: use the first n training examples"}
    )
    max_eval_examples: int | None = field(
        default=None, metadata={"help": "smoke runs: first n of each validation part"}
    )
    wandb_project: str | None = field(default=None, metadata={"help": "log to this W&B project (needs wandb)"})


def coerce(value, hint, where: str):
    """A YAML value as the dataclass field's type, or an error naming the config line."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None:
            return None
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return [coerce(v, typing.get_args(hint)[0], where) for v in value]
    if hint is float and not isinstance(value, bool):
        try:
            return float(value)  # YAML reads 1e-5 (no dot) as a string
        except (TypeError, ValueError):
            pass
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def config_defaults(path: str, task: str | None) -> dict:
    """Run settings from a YAML config: those of the config it extends (`extends: paper.yaml`), then
    its top level, then its `tasks.<task>` section."""
    root, values = read_yaml(path)
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ValueError(f"{path}:1: expected a mapping of settings")
    hints = typing.get_type_hints(RunArgs)
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in root.value}
    base = base_config(path, values)
    settings = {} if base is None else config_defaults(str(base), task)

    settable = sorted(set(hints) - set(COMMAND_LINE_ONLY))

    def take(items: dict, where: typing.Callable[[str], str]) -> None:
        for key, value in items.items():
            if key in COMMAND_LINE_ONLY:
                raise ValueError(f"{where(key)}: {key!r} is set on the command line only (--{key})")
            if key not in settable:
                raise ValueError(f"{where(key)}: unknown setting {key!r} (known: {', '.join(settable)})")
            settings[key] = coerce(value, hints[key], where(key))

    take({k: v for k, v in values.items() if k not in CONFIG_SECTIONS}, lambda key: f"{path}:{lines[str(key)]}")
    per_task = values.get("tasks") or {}
    if not isinstance(per_task, dict):
        raise ValueError(f"{path}:{lines['tasks']}: tasks: expected a mapping of task names to settings")
    for name, section in per_task.items():
        if name not in TASKS:
            raise ValueError(f"{path}:{lines['tasks']}: tasks.{name}: unknown task (known: {', '.join(TASKS)})")
        if section is not None and not isinstance(section, dict):
            raise ValueError(f"{path}:{lines['tasks']}: tasks.{name}: expected a mapping of settings, got {section!r}")
    take(per_task.get(task.lower() if task else None) or {}, lambda key: f"{path}:{lines['tasks']}: tasks.{task}")
    return settings


def parse_args(argv: list[str] | None = None) -> RunArgs:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = HfArgumentParser(RunArgs, prog="python -m superglue.train", epilog=DEBUG_HELP)
    known, _ = parser.parse_known_args(argv)  # the config and the task decide the defaults
    if known.config:
        parser.set_defaults(**config_defaults(known.config, known.task))
    args, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if unknown:
        raise ValueError(f"unknown argument(s) {' '.join(unknown)} (--help lists the flags)")
    args.task = get_task(args.task).name
    check_optimizer(args.optimizer)
    check_choice("multirc_split", args.multirc_split, MULTIRC_SPLITS)
    check_choice("block_list", args.block_list, BLOCK_LISTS)
    if args.seed == -1:  # the official code's default: a fresh seed, recorded in the run name and results
        args.seed = random.SystemRandom().randrange(2**31)
        print(f"[superglue] --seed -1: drew seed {args.seed}")
    for name in ("max_train_examples", "max_eval_examples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} {getattr(args, name)}: expected at least 1 (leave it out for every example)")
    if args.bf16 and not torch.cuda.is_available():  # checked here, before the data and the model are loaded
        raise ValueError("--bf16 needs a CUDA GPU and none is visible: leave it out to train in fp32")
    return args


class SuperGLUETrainer(ResumableTrainerMixin, Trainer):
    """The Trainer with checkpoints that appear only when whole, a checkpoint on SIGTERM/SIGINT, and
    max_grad_norm clipping `sparse`'s gathered gradients too (badam.hf.clip_ratio_gradients)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        clip_ratio_gradients(self)


def evaluate(trainer: Trainer, task: Task, dataset: Encoded) -> dict[str, float]:
    output = trainer.predict(dataset, metric_key_prefix="final")
    return task_metrics(task.name, output.predictions, output.label_ids, dataset.groups)


def training_arguments(args: RunArgs, run_dir: Path, run_name: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(run_dir),
        run_name=run_name,
        seed=args.seed,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler_type,
        warmup_steps=args.warmup_ratio,
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps,
        weight_decay=args.weight_decay,
        adam_beta1=args.adam_beta1,
        adam_beta2=args.adam_beta2,
        adam_epsilon=args.adam_epsilon,
        # The ratio optimizer's hooks consume the gradients in backward; it clips them itself.
        max_grad_norm=args.max_grad_norm,
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=1,
        logging_steps=args.logging_steps,
        bf16=args.bf16,
        report_to=["wandb"] if args.wandb_project else "none",
        label_names=["labels"],  # a PEFT wrapper's forward(**kwargs) hides them from the Trainer
        remove_unused_columns=False,
    )


def report_to_wandb(results: dict) -> None:
    import wandb

    if wandb.run is None:  # the Trainer's run is gone (e.g. a resumed run that had nothing left to train)
        wandb.init(project=results["config"]["wandb_project"], name=results["run_name"])
    wandb.log({f"final/{part}/{k}": v for part in ("selection", "test") for k, v in results[part].items()})
    wandb.run.summary.update({"test_score": results["test"]["score"], "best_step": results["best_step"]})
    wandb.finish()


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    task = get_task(args.task)
    run_name = args.run_name or f"{task.name}-{args.optimizer}-seed{args.seed}"
    run_dir = run_directory(args.output_root, run_name)
    if args.wandb_project:
        if importlib.util.find_spec("wandb") is None:
            raise ImportError("--wandb_project needs the wandb package: pip install wandb")
        os.environ.setdefault("WANDB_PROJECT", args.wandb_project)
    check_model(args.model_name)  # before the data: a model that cannot be had fails at once
    started = time.time()

    train_examples, train_source = load_examples(task, "train", args.data_dir, args.train_file)
    wanted = args.train_file.split(",")[0].strip()
    if args.data_dir is not None and Path(train_source).name != wanted:
        print(f"[superglue] {task.name}: no {wanted} in {Path(train_source).parent}; training on {train_source}")
    val_examples, val_source = load_examples(task, "val", args.data_dir)
    selection, test = split_validation(task, val_examples, args.multirc_split)
    parts = {
        "train": train_examples[: args.max_train_examples],
        "selection": selection[: args.max_eval_examples],
        "test": test[: args.max_eval_examples],
    }
    identity = run_identity(args, parts, {"train": train_source, "selection": val_source, "test": val_source})
    claim(run_dir, identity, args.overwrite)  # refuses a directory that another run's settings wrote
    if (run_dir / "results.json").is_file():
        print(f"[superglue] {run_dir}/results.json exists: run finished (--overwrite redoes it)")
        return read_json(run_dir / "results.json")

    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, args.model_name)
    featurizer = Featurizer(tokenizer, args.max_seq_length)
    data = {part: Encoded(examples, featurizer, f"{task.name} {part}") for part, examples in parts.items()}

    training_args = training_arguments(args, run_dir, run_name)
    set_seed(args.seed)  # the head's initialisation
    model = TaskModel.from_pretrained(args.model_name, task.head).to(training_args.device)
    model, extra = prepare(args.optimizer, model, training_args, args)
    resume = resume_point(run_dir)
    if resume is not None:
        check_checkpoint(resume, identity)
    record(run_dir, identity)  # only now: a start that failed above leaves the directory unclaimed
    best = BestModel(run_dir / "best")
    selection_data = data["selection"]
    trainer = SuperGLUETrainer(
        model=model,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=selection_data,
        data_collator=Collator(tokenizer.pad_token_id),
        compute_metrics=lambda p: task_metrics(task.name, p.predictions, p.label_ids, selection_data.groups),
        callbacks=extra.get("callbacks", []) + [EvaluateAtEnd(), best, RunIdentity(identity)],
        optimizers=extra.get("optimizers", (None, None)),
        resume_hint=RESUME_HINT,
    )
    state = read_json(resume / "trainer_state.json") if resume else {}
    if state and state["global_step"] >= state["max_steps"]:
        # Resuming from the last step would make the Trainer take one step more: skip training instead.
        print(f"[superglue] training finished at {resume}: selecting and testing")
        global_step = state["global_step"]
    else:
        if resume:
            print(f"[superglue] resuming from {resume}")
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        global_step = trainer.state.global_step

    chosen = best.restore(trainer.model)
    trainer.compute_metrics = None  # it knows the selection part's groups only; evaluate() does each part
    test_metrics = evaluate(trainer, task, data["test"])
    results = {
        "task": task.name,
        "optimizer": args.optimizer,
        "model_name": args.model_name,
        "seed": args.seed,
        "run_name": run_name,
        "metric": task.metric,
        "score": test_metrics["score"],
        "selection": evaluate(trainer, task, data["selection"]),
        "test": test_metrics,
        "best_step": chosen["step"],
        "global_step": global_step,
        "examples": {part: len(examples) for part, examples in parts.items()},
        "inputs": {part: len(dataset) for part, dataset in data.items()},
        "sources": {"train": train_source, "val": val_source},
        "minutes": round((time.time() - started) / 60, 2),  # of the session that finished the run
        "config": asdict(args),
    }
    write_json_atomic(run_dir / "results.json", results)
    print(
        f"[superglue] {run_name}: test {task.metric} {results['score']:.4f} "
        f"(selection {results['selection']['score']:.4f}, best step {chosen['step']}) -> {run_dir}/results.json"
    )
    if args.wandb_project:
        report_to_wandb(results)
    return results


if __name__ == "__main__":
    run_cli(main)
