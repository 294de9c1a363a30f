"""Files: reading that names the file and line of what is wrong, and atomic writes.

Every file a run leaves behind (results, best model, run identity, tables) is written with
`badam.atomic`'s atomic writes: a temporary file beside the target, fsynced, renamed over it, and
the folder fsynced, so a kill at any moment leaves either the old file or the whole new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# The repository's one atomic write (badam.atomic), under the names this package has always used.
from badam.atomic import atomic_write_json as write_json_atomic  # noqa: F401
from badam.atomic import atomic_write_text as write_text_atomic  # noqa: F401


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of `path`, or an error saying that it is missing or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (at byte {e.start + 1} of the file): save the file as UTF-8"
        ) from None


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file, or an error naming the file and the line where it stops being JSON."""
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def read_yaml(path: str | Path, what: str = "config") -> tuple[yaml.Node | None, Any]:
    """(the node tree, for line numbers; the values) of a YAML file; a syntax error names file and line."""
    text = read_text(path, what)
    try:
        return yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValueError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None


def base_config(path: str | Path, values: dict) -> Path | None:
    """The config that `path` extends (its `extends:` key, relative to it), or None."""
    name = values.get("extends")
    if name is None:
        return None
    base = Path(path).parent / str(name)
    if not isinstance(name, str) or not base.is_file():
        raise ValueError(f"{path}: extends: {name!r} is not a config file beside it (e.g. extends: paper.yaml)")
    return base


def read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, record) for every non-empty line; a bad line is an error naming file and line."""
    path = Path(path)
    records = []
    with path.open("rb") as f:  # bytes, so that a non-UTF-8 line is reported with its number
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}:{lineno}: not UTF-8 text (at byte {e.start + 1} of the line): save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            records.append((lineno, record))
    return records
