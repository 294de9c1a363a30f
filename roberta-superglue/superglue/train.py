"""Fine-tune an encoder on one SuperGLUE task with one optimizer, the way the BAdam paper does.

    python -m superglue.train --config configs/paper.yaml --task rte --optimizer block \\
        --data_dir ../shared/data/superglue

Protocol: train on the train split; split the official validation set into its first N examples
(selection) and the rest (test); evaluate on the selection part every `eval_steps` and at the end,
keep the best weights (superglue.selection), then report the best model's metrics on the test part
in `<output_root>/<run_name>/results.json` (written atomically).

Settings come from the dataclass defaults below, then the YAML config (its top level, then its
`tasks.<task>` section), then the command line. A rerun of an unfinished run resumes from its last
complete checkpoint; a finished run (results.json present) is not run again: delete its directory
to redo it.
"""

import importlib.util
import json
import os
import sys
import time
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from transformers import AutoTokenizer, HfArgumentParser, Trainer, TrainingArguments, set_seed

from superglue.data import load_examples
from superglue.encoding import Encoder
from superglue.files import write_json_atomic
from superglue.metrics import task_metrics
from superglue.model import Collator, TaskModel
from superglue.optim import check_optimizer, prepare
from superglue.selection import BestModel, EvaluateAtEnd
from superglue.tasks import TASKS, Encoded, Task, get_task, split_validation

OUTPUT_ROOT = Path(__file__).resolve().parents[1] / "outputs"
# Top-level config sections that are not run settings: read by superglue.aggregate.
CONFIG_SECTIONS = ("tasks", "methods", "columns", "paper")


@dataclass
class RunArgs:
    task: str = field(metadata={"help": "boolq, copa, multirc, rte, wic or wsc (jiant's task names)"})
    optimizer: str = field(metadata={"help": "adam, lora, block (BAdam) or sparse (BAdam's ratio variant)"})
    config: str | None = field(default=None, metadata={"help": "YAML defaults (configs/paper.yaml); flags override"})
    model_name: str = field(default="FacebookAI/roberta-large", metadata={"help": "encoder: hub name or local dir"})
    data_dir: str | None = field(default=None, metadata={"help": "dir of <Task>/train.jsonl, val.jsonl; none: the hub"})
    train_file: str = field(default="train.jsonl", metadata={"help": "training file in the task dir (a, b: the first found)"})
    output_root: str = field(default=str(OUTPUT_ROOT), metadata={"help": "runs go to <output_root>/<run_name>/"})
    run_name: str | None = field(default=None, metadata={"help": "default: <task>-<optimizer>-seed<seed>"})
    seed: int = field(default=0, metadata={"help": "seed of the head's initialisation, dropout and data order"})
    max_seq_length: int = field(default=256, metadata={"help": "tokens per input (jiant's default 256)"})
    learning_rate: float = field(default=1e-5, metadata={"help": "peak learning rate"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "decay after warmup (Trainer's names)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of the steps spent warming up"})
    batch_size: int = field(default=16, metadata={"help": "training batch size"})
    eval_batch_size: int = field(default=64, metadata={"help": "evaluation batch size"})
    num_train_epochs: float = field(default=32, metadata={"help": "passes over the training set"})
    max_steps: int = field(default=-1, metadata={"help": "if > 0, train this many steps instead of epochs"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases/norms; jiant's 0.01)"})
    adam_beta1: float = field(default=0.9, metadata={"help": "Adam beta1"})
    adam_beta2: float = field(default=0.999, metadata={"help": "Adam beta2"})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "Adam epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (jiant's 1.0); 0 disables"})
    eval_steps: int = field(default=100, metadata={"help": "evaluate on the selection split every this many steps"})
    save_steps: int = field(default=500, metadata={"help": "full checkpoint (for resuming) every this many steps"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every this many steps"})
    train_last_layer: bool = field(default=True, metadata={"help": "keep the fresh pooler and head trainable throughout"})
    switch_every: int = field(default=100, metadata={"help": "K: steps before block/sparse switch what trains"})
    switch_mode: str = field(default="ascending", metadata={"help": "block order: ascending, descending, random, fixed"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "value"], metadata={"help": "LoRA targets"})
    update_ratio: float = field(default=0.1, metadata={"help": "sparse: share of each tensor that trains"})
    mask_mode: str = field(default="adjacent", metadata={"help": "sparse: adjacent or scatter"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast (GPU)"})
    max_train_examples: int | None = field(default=None, metadata={"help": "smoke runs: use the first n training examples"})
    max_eval_examples: int | None = field(default=None, metadata={"help": "smoke runs: first n of each validation part"})
    wandb_project: str | None = field(default=None, metadata={"help": "log to this W&B project (needs wandb)"})


def coerce(value, hint, where: str):
    """A YAML value as the dataclass field's type, or an error naming the config line."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None:
            return None
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is list and isinstance(value, list):
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
    """Run settings from a YAML config: its top level, then its `tasks.<task>` section."""
    text = Path(path).read_text()
    root = yaml.compose(text)
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ValueError(f"{path}:1: expected a mapping of settings")
    hints = typing.get_type_hints(RunArgs)
    values = yaml.safe_load(text)
    lines = {key.value: key.start_mark.line + 1 for key, _ in root.value}
    settings = {}

    settable = sorted(set(hints) - {"task", "optimizer", "config"})

    def take(items: dict, where: typing.Callable[[str], str]) -> None:
        for key, value in items.items():
            if key not in settable:
                raise ValueError(f"{where(key)}: unknown setting {key!r} (known: {', '.join(settable)})")
            settings[key] = coerce(value, hints[key], where(key))

    take({k: v for k, v in values.items() if k not in CONFIG_SECTIONS}, lambda key: f"{path}:{lines[key]}")
    per_task = values.get("tasks") or {}
    for name in per_task:
        if name not in TASKS:
            raise ValueError(f"{path}:{lines['tasks']}: tasks.{name}: unknown task (known: {', '.join(TASKS)})")
    take(per_task.get(task.lower() if task else None) or {}, lambda key: f"{path}:{lines['tasks']}: tasks.{task}")
    return settings


def parse_args(argv: list[str] | None = None) -> RunArgs:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = HfArgumentParser(RunArgs)
    known, _ = parser.parse_known_args(argv)  # the config and the task decide the defaults
    if known.config:
        parser.set_defaults(**config_defaults(known.config, known.task))
    (args,) = parser.parse_args_into_dataclasses(argv)
    args.task = get_task(args.task).name
    check_optimizer(args.optimizer)
    return args


def last_complete_checkpoint(run_dir: Path) -> str | None:
    """The newest checkpoint the Trainer finished writing (trainer_state.json is written last)."""
    done = [p for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return str(max(done, key=lambda p: int(p.name.split("-")[1]))) if done else None


def evaluate(trainer: Trainer, task: Task, dataset: Encoded) -> dict[str, float]:
    output = trainer.predict(dataset, metric_key_prefix="final")
    return task_metrics(task.name, output.predictions, output.label_ids, dataset.groups)


def training_arguments(args: RunArgs, run_dir: Path, run_name: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(run_dir), run_name=run_name, seed=args.seed,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.eval_batch_size,
        learning_rate=args.learning_rate, lr_scheduler_type=args.lr_scheduler_type, warmup_steps=args.warmup_ratio,
        num_train_epochs=args.num_train_epochs, max_steps=args.max_steps,
        weight_decay=args.weight_decay, adam_beta1=args.adam_beta1, adam_beta2=args.adam_beta2,
        adam_epsilon=args.adam_epsilon,
        # The ratio optimizer's hooks consume the gradients in backward; it clips them itself.
        max_grad_norm=0.0 if args.optimizer == "sparse" else args.max_grad_norm,
        eval_strategy="steps", eval_steps=args.eval_steps, save_strategy="steps", save_steps=args.save_steps,
        save_total_limit=1, logging_steps=args.logging_steps, bf16=args.bf16,
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
    run_dir = Path(args.output_root) / run_name
    if (run_dir / "results.json").is_file():
        print(f"[superglue] {run_dir}/results.json exists: run finished (delete the directory to redo it)")
        return json.loads((run_dir / "results.json").read_text())
    if args.wandb_project:
        if importlib.util.find_spec("wandb") is None:
            raise ImportError("--wandb_project needs the wandb package: pip install wandb")
        os.environ.setdefault("WANDB_PROJECT", args.wandb_project)
    started = time.time()

    train_examples, train_source = load_examples(task, "train", args.data_dir, args.train_file)
    val_examples, val_source = load_examples(task, "val", args.data_dir)
    selection, test = split_validation(task, val_examples)
    parts = {"train": train_examples[: args.max_train_examples], "selection": selection[: args.max_eval_examples],
             "test": test[: args.max_eval_examples]}
    tokenizer = AutoTokenizer.from_pretrained(args.model_name)
    encoder = Encoder(tokenizer, args.max_seq_length)
    data = {part: Encoded(task, examples, encoder, f"{task.name} {part}") for part, examples in parts.items()}

    training_args = training_arguments(args, run_dir, run_name)
    set_seed(args.seed)  # the head's initialisation
    model = TaskModel.from_pretrained(args.model_name, task.head).to(training_args.device)
    model, extra = prepare(args.optimizer, model, training_args, args)
    best = BestModel(run_dir / "best")
    selection_data = data["selection"]
    trainer = Trainer(
        model=model, args=training_args, train_dataset=data["train"], eval_dataset=selection_data,
        data_collator=Collator(tokenizer.pad_token_id),
        compute_metrics=lambda p: task_metrics(task.name, p.predictions, p.label_ids, selection_data.groups),
        callbacks=extra.get("callbacks", []) + [EvaluateAtEnd(), best],
        optimizers=extra.get("optimizers", (None, None)),
    )
    resume = last_complete_checkpoint(run_dir)
    state = json.loads((Path(resume) / "trainer_state.json").read_text()) if resume else {}
    if state and state["global_step"] >= state["max_steps"]:
        # Resuming from the last step would make the Trainer take one step more: skip training instead.
        print(f"[superglue] training finished at {resume}: selecting and testing")
        global_step = state["global_step"]
    else:
        if resume:
            print(f"[superglue] resuming from {resume}")
        trainer.train(resume_from_checkpoint=resume)
        global_step = trainer.state.global_step

    chosen = best.restore(trainer.model)
    trainer.compute_metrics = None  # it knows the selection part's groups only; evaluate() does each part
    test_metrics = evaluate(trainer, task, data["test"])
    results = {
        "task": task.name, "optimizer": args.optimizer, "model_name": args.model_name, "seed": args.seed,
        "run_name": run_name, "metric": task.metric, "score": test_metrics["score"],
        "selection": evaluate(trainer, task, data["selection"]), "test": test_metrics,
        "best_step": chosen["step"], "global_step": global_step,
        "examples": {part: len(examples) for part, examples in parts.items()},
        "inputs": {part: len(dataset) for part, dataset in data.items()},
        "sources": {"train": train_source, "val": val_source},
        "minutes": round((time.time() - started) / 60, 2),  # of the session that finished the run
        "config": asdict(args),
    }
    write_json_atomic(run_dir / "results.json", results)
    print(f"[superglue] {run_name}: test {task.metric} {results['score']:.4f} "
          f"(selection {results['selection']['score']:.4f}, best step {chosen['step']}) -> {run_dir}/results.json")
    if args.wandb_project:
        report_to_wandb(results)
    return results


if __name__ == "__main__":
    main()
