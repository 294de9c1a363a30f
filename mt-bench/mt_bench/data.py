"""FastChat's MT-bench files, and the append-only JSONL files every stage writes.

Inputs, in FastChat's `llm_judge` layout, read from a data directory:

    question.jsonl                   80 questions: question_id, category, turns (2), reference (some)
    reference_answer/<model>.jsonl   reference answers in the model-answer format (gpt-4.jsonl)
    judge_prompts.jsonl              judge prompts by name; FastChat keeps it one level up, in data/

The default data directory is the one inside a source install of FastChat (`pip install -e .` of its
repository); the PyPI wheel of `fschat` does not ship the data, so otherwise pass `--data_dir` (see
README.md for the download). Outputs are JSONL written one complete line at a time and fsynced, so an
interrupted run keeps every finished record and a rerun skips them. Every file is checked as it is
read: a missing file, a line that is not UTF-8 or JSON, or a field of the wrong type is a UsageError
naming the file and line.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

from mt_bench.cli import UsageError

# FastChat's llm_judge sampling temperatures by category; other categories get 0.7, as there.
TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
DOWNLOAD_URL = "https://raw.githubusercontent.com/lm-sys/FastChat/main/fastchat/llm_judge/data"
# Outputs mirror FastChat's layout below this directory: model_answer/<model_id>.jsonl and
# model_judgment/<judge>_{single,pair}.jsonl, so FastChat's own files can be dropped in and read.
OUTPUT_DIR = Path(__file__).resolve().parents[1] / "outputs"


def default_data_dir() -> Path | None:
    """FastChat's own copy of the data when fschat is installed from source, else None."""
    try:
        import fastchat
    except ImportError:
        return None
    path = Path(fastchat.__file__).parent / "llm_judge" / "data" / "mt_bench"
    return path if (path / "question.jsonl").is_file() else None


def resolve_data_dir(data_dir: str | None) -> Path:
    path = Path(data_dir) if data_dir else default_data_dir()
    if path is None or not (path / "question.jsonl").is_file():
        where = f"{path}/question.jsonl" if path else "FastChat's source tree (fschat is not installed from source)"
        raise UsageError(
            f"MT-bench data not found at {where}. Pass --data_dir DIR holding question.jsonl, "
            f"reference_answer/gpt-4.jsonl and judge_prompts.jsonl, e.g. downloaded from {DOWNLOAD_URL}/"
            "mt_bench/question.jsonl, .../mt_bench/reference_answer/gpt-4.jsonl and .../judge_prompts.jsonl"
        )
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """Every record of a JSONL file (see numbered_records)."""
    return [record for _, record in numbered_records(path)]


def numbered_records(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, record) for every record of a JSONL file; a missing file or a bad line is a
    UsageError naming them.

    A last line without its newline is what a crash in the middle of a write leaves: it is dropped
    with a warning (append_jsonl removes it before writing more)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text ({e.reason}): expected a JSONL file") from None
    lines = text.split("\n")
    if lines[-1].strip() and not text.endswith("\n"):
        warnings.warn(f"{path}:{len(lines)}: ignoring an unfinished last line (interrupted write)", stacklevel=2)
    records = []
    for lineno, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise UsageError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        records.append((lineno, record))
    return records


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append records as complete lines and fsync, so a crash loses at most the line being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_unfinished_line(path)
    with path.open("a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def rewrite_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Replace a JSONL file atomically (write a sibling, then rename), so it is never half-written."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _drop_unfinished_line(path: Path) -> None:
    # Appending after a half-written line would glue two records into one corrupt line.
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _require(record: dict, path: Path, lineno: int, key: str, kind: type | tuple[type, ...]) -> object:
    value = record.get(key)
    # JSON true/false are Python bools, which are ints too: never a valid id, turn or score.
    if not isinstance(value, kind) or isinstance(value, bool):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UsageError(f"{path}:{lineno}: field '{key}' must be {name}, got {value!r:.80}")
    return value


def load_questions(data_dir: str | Path, begin: int | None = None, end: int | None = None) -> list[dict]:
    """The questions of question.jsonl, checked; begin/end slice them as FastChat's do."""
    path = Path(data_dir) / "question.jsonl"
    questions, seen = [], set()
    for lineno, q in numbered_records(path):
        qid = _require(q, path, lineno, "question_id", int)
        _require(q, path, lineno, "category", str)
        turns = _require(q, path, lineno, "turns", list)
        if not turns or not all(isinstance(t, str) for t in turns):
            raise UsageError(f"{path}:{lineno}: 'turns' must be a non-empty list of strings")
        if qid in seen:
            raise UsageError(f"{path}:{lineno}: duplicate question_id {qid}")
        seen.add(qid)
        questions.append(q)
    return questions[begin:end]


def load_answers(path: str | Path) -> dict[int, dict]:
    """Answers in FastChat's model_answer format by question_id (the last one wins, as in FastChat)."""
    path = Path(path)
    answers = {}
    for lineno, a in numbered_records(path):
        qid = _require(a, path, lineno, "question_id", int)
        choices = _require(a, path, lineno, "choices", list)
        turns = choices[0].get("turns") if choices and isinstance(choices[0], dict) else None
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise UsageError(f"{path}:{lineno}: 'choices' must hold at least one {{'turns': [strings]}}")
        answers[qid] = a
    return answers


# Judgment files by kind: the fields each record must have, and their types. "pair" is FastChat's
# pairwise format (one line per comparison); "game" one game of a comparison whose other game is
# not judged yet (see judge.py), in <judgment file>.partial.
JUDGMENT_FIELDS = {
    "single": {"question_id": int, "model": str, "judge": list, "turn": int, "score": (int, float)},
    "pair": {"question_id": int, "model_1": str, "model_2": str, "judge": list, "g1_winner": str, "g2_winner": str},
    "game": {
        "question_id": int,
        "model_1": str,
        "model_2": str,
        "judge": list,
        "turn": int,
        "game": int,
        "winner": str,
    },
}
WINNERS = ("model_1", "model_2", "tie", "error")


def load_judgments(path: str | Path, kind: str = "single") -> list[dict]:
    """Judgment records of a kind (see JUDGMENT_FIELDS), checked; FastChat's files read as they are."""
    path = Path(path)
    records = []
    for lineno, j in numbered_records(path):
        for key, field_type in JUDGMENT_FIELDS[kind].items():
            _require(j, path, lineno, key, field_type)
        if not j["judge"] or not isinstance(j["judge"][0], str):
            raise UsageError(
                f"{path}:{lineno}: field 'judge' must be [judge model, prompt name], got {j['judge']!r:.80}"
            )
        for key in ("winner", "g1_winner", "g2_winner"):
            if key in JUDGMENT_FIELDS[kind] and j[key] not in WINNERS:
                raise UsageError(
                    f"{path}:{lineno}: field '{key}' must be model_1, model_2, tie or error, got {j[key]!r:.80}"
                )
        records.append(j)
    return records


def partial_path(path: str | Path) -> Path:
    """Beside an output file, the pieces of its records not yet whole (a comparison's first game, an
    answer's first turn): kept so that a rerun does not pay for them again, while the file itself
    holds only whole records, as FastChat's tools expect."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def prune_jsonl(path: Path, keep: Callable[[dict], bool]) -> None:
    """Keep only the records `keep` accepts, atomically; remove the file when none is left."""
    if not path.exists():
        return
    records = [r for r in read_jsonl(path) if keep(r)]
    if records:
        rewrite_jsonl(path, records)
    else:
        path.unlink()


def select_questions(questions: list[dict], begin: int | None, end: int | None) -> list[dict]:
    """questions[begin:end] (FastChat's --question-begin/--question-end); an empty slice is a UsageError."""
    selected = questions[begin:end]
    if not selected:
        raise UsageError(
            f"--question_begin {begin} --question_end {end}: no question of the {len(questions)} in that slice"
        )
    return selected


def questions_to_answer(
    data_dir: str | None, begin: int | None, end: int | None, answer_file: Path, model_id: str
) -> list[dict]:
    """The questions of questions[begin:end] that answer_file (if it exists) does not answer yet, its
    answers checked to be this model's, to these questions; says how many are answered already."""
    data_dir = resolve_data_dir(data_dir)
    all_questions = load_questions(data_dir)
    questions = select_questions(all_questions, begin, end)
    done = load_answers(answer_file) if answer_file.exists() else {}
    check_question_ids(done, all_questions, answer_file, data_dir)
    others = sorted({a.get("model_id") for a in done.values()} - {model_id}, key=str)
    if others:
        raise UsageError(
            f"{answer_file}: holds answers of model_id {others}, not {model_id!r}: pass another "
            "--answer_file, or the model id those answers were made with"
        )
    todo = [q for q in questions if q["question_id"] not in done]
    print(f"{model_id}: {len(questions) - len(todo)} of {len(questions)} questions already answered in {answer_file}")
    return todo


def reorg_answers(answer_file: Path) -> None:
    """Sort by question id, one answer per id (the last), as FastChat's reorg_answer_file leaves a file."""
    answers = load_answers(answer_file)
    rewrite_jsonl(answer_file, [answers[k] for k in sorted(answers)])


def check_question_ids(ids: Iterable[int], questions: list[dict], path: str | Path, data_dir: str | Path) -> None:
    """A UsageError when a file (answers, judgments) is about questions that question.jsonl lacks."""
    unknown = sorted(set(ids) - {q["question_id"] for q in questions})
    if unknown:
        shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
        raise UsageError(
            f"{path}: {len(unknown)} question ids not in {Path(data_dir) / 'question.jsonl'} ({shown}): "
            "a file for another question set, or the wrong --data_dir?"
        )


def load_reference_answers(data_dir: str | Path, model: str = "gpt-4") -> dict[int, list[str]]:
    """Reference answer turns by question_id, from reference_answer/<model>.jsonl."""
    path = Path(data_dir) / "reference_answer" / f"{model}.jsonl"
    if not path.is_file():
        raise UsageError(f"reference answers not found: {path} (see --ref_model)")
    return {qid: a["choices"][0]["turns"] for qid, a in load_answers(path).items()}


def load_judge_prompts(data_dir: str | Path) -> dict[str, dict]:
    """Judge prompts by name, from judge_prompts.jsonl in data_dir or its parent (FastChat's place)."""
    data_dir = Path(data_dir)
    candidates = [data_dir / "judge_prompts.jsonl", data_dir.parent / "judge_prompts.jsonl"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise UsageError(f"judge_prompts.jsonl not found in {data_dir} or its parent (see --data_dir)")
    prompts = {}
    for lineno, p in numbered_records(path):
        for key in ("name", "type", "system_prompt", "prompt_template"):
            _require(p, path, lineno, key, str)
        prompts[p["name"]] = p
    return prompts
