"""Every command's error boundary: bad input gives one `error:` line naming what to fix, status 2, no
traceback; --debug (or BADAM_DEBUG=1) shows the traceback. Run in-process through cli.run, and once
per command as `python -m`."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from mt_bench import api_answer, cli, fake_judge, generate, judge, show, table2
from mt_bench.cli import Interrupted, UsageError
from mt_bench.data import append_jsonl, load_questions

MT_BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fails(capsys, main, argv) -> str:
    """The one line a command printed on stderr when it stopped with status 2."""
    with pytest.raises(SystemExit) as stop:
        cli.run(main, argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in err
    return last


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once the socket is closed


def answers(path, qids, model="m", turns=2):
    append_jsonl(
        path,
        [
            {
                "question_id": q,
                "answer_id": "x",
                "model_id": model,
                "tstamp": 0.0,
                "choices": [{"index": 0, "turns": [f"a{t}" for t in range(turns)]}],
            }
            for q in qids
        ],
    )


# The boundary itself.


def test_expected_errors_are_one_line_and_status_2(capsys, tmp_path):
    def main(argv):
        raise UsageError("--thing x: bad\nfix it")

    assert fails(capsys, main, []) == "error: --thing x: bad fix it"
    missing = tmp_path / "nope.txt"
    assert fails(capsys, lambda argv: missing.read_text(), []) == f"error: {missing}: No such file or directory"
    assert "not UTF-8" in fails(capsys, lambda argv: b"\xff".decode(), [])
    assert "not valid JSON" in fails(capsys, lambda argv: json.loads("{"), [])


def test_debug_and_bugs_keep_the_traceback(monkeypatch):
    def main(argv):
        raise UsageError("bad")

    with pytest.raises(UsageError):
        cli.run(main, ["--debug"])
    monkeypatch.setenv("BADAM_DEBUG", "1")
    with pytest.raises(UsageError):
        cli.run(main, [])
    monkeypatch.delenv("BADAM_DEBUG")
    with pytest.raises(KeyError):  # not an expected error: a bug, whose traceback must show
        cli.run(lambda argv: {}["x"], [])


def test_sigterm_is_an_interruption(capsys):
    before = signal.getsignal(signal.SIGTERM)

    def main(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # never reached: the handler raises first

    with pytest.raises(SystemExit) as stop:
        cli.run(main, [])
    assert stop.value.code == 128 + signal.SIGTERM and capsys.readouterr().err == "interrupted\n"

    def interrupted(argv):
        raise Interrupted("interrupted: 3 saved; a rerun continues")

    with pytest.raises(SystemExit) as stop:
        cli.run(interrupted, [])
    assert stop.value.code == 128 + signal.SIGINT
    assert capsys.readouterr().err == "interrupted: 3 saved; a rerun continues\n"
    assert signal.getsignal(signal.SIGTERM) == before


# show


@pytest.fixture
def show_args(tmp_path, data_dir):
    def args(judgments: str, *extra):
        path = tmp_path / "judgments.jsonl"
        path.write_bytes(judgments.encode() if isinstance(judgments, str) else judgments)
        return ["--judgment_file", str(path), "--data_dir", str(data_dir), "--results_dir", str(tmp_path / "r"), *extra]

    return args


JUDGMENT = {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "turn": 1, "score": 7}


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("", [], r"judgments.jsonl: no judgments in it \(run mt_bench.judge first\)"),
        (
            json.dumps({**JUDGMENT, "score": "seven"}) + "\n",
            [],
            r"judgments.jsonl:1: field 'score' must be int or float",
        ),
        (json.dumps(JUDGMENT) + "\n{oops\n", [], r"judgments.jsonl:2: not valid JSON"),
        (
            json.dumps({k: v for k, v in JUDGMENT.items() if k != "judge"}) + "\n",
            [],
            r"judgments.jsonl:1: field 'judge'",
        ),
        (
            json.dumps({**JUDGMENT, "question_id": 9999}) + "\n",
            [],
            r"judgments.jsonl: 1 question ids not in .*question.jsonl",
        ),
        (b'{"a": "\xff"}\n', [], r"judgments.jsonl:1: not UTF-8 text"),
        (
            json.dumps(JUDGMENT) + "\n",
            ["--judge_model", "gpt-5"],
            r"no judgments by --judge_model gpt-5; judges in it: \['gpt-4'\]",
        ),
        (json.dumps(JUDGMENT) + "\n", ["--model_list", "ghost"], r"no judgments for \['ghost'\] \(see --model_list\)"),
        (json.dumps(JUDGMENT) + "\n", ["--table2_config", "/no/t.yaml"], r"/no/t.yaml: no such Table 2 config"),
        (json.dumps(JUDGMENT) + "\n", ["--pairwise_file", "/no/g.jsonl"], r"--pairwise_file /no/g.jsonl: no such file"),
        (json.dumps(JUDGMENT) + "\n", ["--bogus"], r"unrecognized arguments: --bogus \(see --help\)"),
    ],
)
def test_show_errors(capsys, show_args, tmp_path, content, extra, message):
    assert re.search(message, fails(capsys, show.main, show_args(content, *extra)))
    assert not (tmp_path / "r").exists()  # nothing written before the inputs are all read


def test_show_missing_inputs(capsys, tmp_path, data_dir):
    assert "--judgment_file /no/j.jsonl: no such file (run mt_bench.judge first)" in fails(
        capsys, show.main, ["--judgment_file", "/no/j.jsonl", "--data_dir", str(data_dir)]
    )
    assert f"MT-bench data not found at {tmp_path}/question.jsonl. Pass --data_dir" in fails(
        capsys, show.main, ["--data_dir", str(tmp_path)]
    )


# judge


@pytest.fixture
def judge_args(tmp_path, data_dir):
    return [
        "--model_list",
        "m",
        "--data_dir",
        str(data_dir),
        "--out_dir",
        str(tmp_path),
        "--api_base",
        f"http://127.0.0.1:{closed_port()}/v1",
    ]


def test_judge_errors(capsys, tmp_path, data_dir, judge_args, monkeypatch):
    answer_file = tmp_path / "model_answer" / "m.jsonl"
    assert f"no answers for model 'm': {answer_file} (run mt_bench.generate first" in fails(
        capsys, judge.main, judge_args
    )
    answer_file.parent.mkdir()
    answer_file.touch()
    assert f"{answer_file}: no answers in it" in fails(capsys, judge.main, judge_args)
    answers(answer_file, [9999])
    assert f"{answer_file}: 1 question ids not in" in fails(capsys, judge.main, judge_args)
    answer_file.unlink()
    answers(answer_file, [81], turns=1)
    assert f"{answer_file}: question 81 has 1 answer turns, needs 2" in fails(capsys, judge.main, judge_args)
    answer_file.unlink()
    answers(answer_file, [q["question_id"] for q in load_questions(data_dir)])
    assert "error: --parallel 0: must be at least 1" in fails(capsys, judge.main, [*judge_args, "--parallel", "0"])
    assert "--api_base 'localhost:8000': needs http:// or https://" in fails(
        capsys, judge.main, [*judge_args, "--api_base", "localhost:8000"]
    )
    assert "argument --mode: invalid choice: 'pair'" in fails(capsys, judge.main, [*judge_args, "--mode", "pair"])
    assert "no answers for model 'gpt-3.5-turbo'" in fails(
        capsys, judge.main, [*judge_args, "--mode", "pairwise-baseline"]
    )
    assert "reference_answer/gpt-5.jsonl (see --ref_model)" in fails(
        capsys, judge.main, [*judge_args, "--ref_model", "gpt-5"]
    )
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai = [*judge_args, "--api_base", "https://api.openai.com/v1"]
    assert "$OPENAI_API_KEY is not set: export it" in fails(capsys, judge.main, openai)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**JUDGMENT, "score": "seven"}) + "\n")
    assert f"{bad}:1: field 'score' must be int or float" in fails(
        capsys, judge.main, [*judge_args, "--judgment_file", str(bad)]
    )


# generate


@pytest.fixture
def gen_args(tmp_path, data_dir):
    return [
        "--model_id",
        "tiny",
        "--data_dir",
        str(data_dir),
        "--out_dir",
        str(tmp_path),
        "--device",
        "cpu",
        "--max_new_tokens",
        "2",
    ]


def test_generate_model_path_errors(capsys, tmp_path, gen_args, monkeypatch):
    assert f"--model_path {tmp_path}/nowhere: no such directory" in fails(
        capsys, generate.main, ["--model_path", str(tmp_path / "nowhere"), *gen_args]
    )
    assert f"--model_path {tmp_path}: cannot load it (Unrecognized model" in fails(
        capsys, generate.main, ["--model_path", str(tmp_path), *gen_args]
    )
    # A hub name with the hub out of reach (here: a closed port) and not in the cache.
    monkeypatch.setattr(generate.hub_constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert (
        fails(capsys, generate.main, ["--model_path", "nobody/no-such-model", *gen_args])
        == "error: --model_path nobody/no-such-model: not found locally and there is no network: pass a local model directory"
    )
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{oops")
    assert f"{adapter}/adapter_config.json: no base_model_name_or_path in it: pass --base_model" in fails(
        capsys, generate.main, ["--model_path", str(adapter), *gen_args]
    )


def test_generate_argument_and_answer_file_errors(capsys, tmp_path, gen_args):
    model = ["--model_path", str(tmp_path), *gen_args]  # never loaded: each error comes before
    assert "error: --batch_size 0: must be at least 1" in fails(capsys, generate.main, [*model, "--batch_size", "0"])
    assert "--template: unknown template 'vicuna'" in fails(capsys, generate.main, [*model, "--template", "vicuna"])
    assert "--template: unknown FastChat template 'nope'" in fails(
        capsys, generate.main, [*model, "--template", "fschat:nope"]
    )
    assert "argument --dtype: invalid choice: 'bf16'" in fails(capsys, generate.main, [*model, "--dtype", "bf16"])
    assert "--device gpu: not a device" in fails(capsys, generate.main, [*model, "--device", "gpu"])
    assert "no question of the 80 in that slice" in fails(capsys, generate.main, [*model, "--question_begin", "80"])
    assert "--device_map auto places the model itself: leave out --device" in fails(
        capsys, generate.main, [*model, "--device_map", "auto"]
    )
    assert "--cpu_offloading: goes with --load_8bit and --device_map" in fails(
        capsys, generate.main, [*model, "--cpu_offloading"]
    )
    answer_file = tmp_path / "model_answer" / "tiny.jsonl"
    answers(answer_file, [9999], model="tiny")
    assert f"{answer_file}: 1 question ids not in" in fails(capsys, generate.main, model)
    other = tmp_path / "other.jsonl"
    answers(other, [81], model="someone-else")
    assert f"{other}: holds answers of model_id ['someone-else'], not 'tiny'" in fails(
        capsys, generate.main, [*model, "--answer_file", str(other)]
    )


# pairwise files, api_answer


def test_pairwise_and_api_answer_errors(capsys, tmp_path, data_dir, judge_args, monkeypatch):
    assert "--mode pairwise-all: needs at least 2 models in --model_list" in fails(
        capsys, judge.main, [*judge_args, "--mode", "pairwise-all"]
    )
    assert "--first_n 0: must be at least 1" in fails(capsys, judge.main, [*judge_args, "--first_n", "0"])
    pair_file = tmp_path / "model_judgment" / "gpt-4_pair.jsonl"
    append_jsonl(pair_file, [{"question_id": 81, "model_1": "m", "model_2": "b", "judge": ["gpt-4", "pair-v2"]}])
    show_pairwise = ["--mode", "pairwise-baseline", "--out_dir", str(tmp_path), "--data_dir", str(data_dir)]
    assert f"{pair_file}:1: field 'g1_winner' must be str, got None" in fails(capsys, show.main, show_pairwise)
    assert f"{pair_file}:1: field 'g1_winner' must be str" in fails(
        capsys, judge.main, [*judge_args, "--mode", "pairwise-baseline"]
    )
    pair_file.unlink()
    assert f"--pairwise_file {pair_file}: no such file (run mt_bench.judge --mode pairwise-... first)" in fails(
        capsys, show.main, show_pairwise
    )
    answer_args = ["--data_dir", str(data_dir), "--out_dir", str(tmp_path)]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert "$OPENAI_API_KEY is not set: export it" in fails(capsys, api_answer.main, answer_args)
    assert "--max_tokens 0: must be at least 1" in fails(capsys, api_answer.main, [*answer_args, "--max_tokens", "0"])
    partial = tmp_path / "model_answer" / "gpt-3.5-turbo.jsonl.partial"
    append_jsonl(partial, [{"model_id": "gpt-3.5-turbo", "question_id": 81}])
    assert f"{partial}:1: not a kept turn (model_id, question_id, index, turn, text)" in fails(
        capsys, api_answer.main, answer_args
    )


# table2 and fake_judge


def test_table2_and_fake_judge_errors(capsys, tmp_path):
    assert f"{tmp_path}/t.yaml: no such Table 2 config" in fails(capsys, table2.main, [str(tmp_path / "t.yaml")])
    (tmp_path / "t.yaml").write_text("runs: [a\n")
    assert f"{tmp_path}/t.yaml:2: not valid YAML" in fails(capsys, table2.main, [str(tmp_path / "t.yaml")])
    assert "--port 99999: must be from 0 to 65535" in fails(capsys, fake_judge.main, ["--port", "99999"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"--port {port}: cannot listen on it (Address already in use)" in fails(
            capsys, fake_judge.main, ["--port", str(port)]
        )


# As a user runs them: python -m ..., with and without --debug.


@pytest.mark.parametrize(
    "command, message",
    [
        (["show", "--judgment_file", "/no/j.jsonl"], "error: --judgment_file /no/j.jsonl: no such file"),
        (["judge", "--model_list", "ghost", "--out_dir", "/no/out"], "error: no answers for model 'ghost'"),
        (
            ["generate", "--model_path", "/no/model", "--model_id", "x", "--out_dir", "/no/out"],
            "error: --model_path /no/model: no such directory",
        ),
        (["table2", "/no/t.yaml"], "error: /no/t.yaml: no such Table 2 config"),
        (["api_answer", "--answer_file", "/no/a.jsonl", "--question_begin", "99"], "error: --question_begin 99"),
        (["fake_judge", "--port", "-1"], "error: --port -1: must be from 0 to 65535"),
    ],
)
def test_commands_as_subprocesses(data_dir, command, message):
    if command[0] in ("show", "judge", "generate", "api_answer"):
        command = [*command, "--data_dir", str(data_dir)]
    env = {**os.environ, "PYTHONPATH": MT_BENCH, "BADAM_DEBUG": ""}
    run = [sys.executable, "-m", f"mt_bench.{command[0]}", *command[1:]]
    result = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    if command[0] in ("show", "table2"):  # the quick ones: --debug lets the traceback through
        debug = subprocess.run([*run, "--debug"], env=env, capture_output=True, text=True, timeout=120)
        assert debug.returncode == 1 and "Traceback" in debug.stderr and "UsageError" in debug.stderr
