"""Tests of badam.memory: held-bytes counting, the CPU peak tracker, and the paper's memory estimates."""

import json
import subprocess
import sys

import pytest
import torch
from badam_tiny import layer_heavy_config, tiny_llama_config
from model_families import build
from transformers import LlamaForCausalLM

from badam.memory import (
    BUILTIN_MODELS,
    GB,
    METHODS,
    PartitionOptions,
    count_parameters,
    enable_cpu_allocation_accounting,
    estimate,
    held_bytes,
    main,
    track_peak,
)
from badam.tensor_step import slice_numel

MB = 1 << 20


# --- counting parameters without weights ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "total", "layer"),
    [
        # layer = 4 attention projections (fewer k/v heads under GQA) + 3 MLP matrices + 2 norms
        ("llama2-7b", 6_738_415_616, 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096),
        ("llama3-8b", 8_030_261_248, 2 * 4096**2 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096),
        ("llama2-13b", 13_015_864_320, 4 * 5120**2 + 3 * 5120 * 13824 + 2 * 5120),
        ("llama2-70b", 68_976_648_192, 2 * 8192**2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192),
    ],
)
def test_builtin_parameter_counts(name, total, layer):
    count = count_parameters(name)
    config = BUILTIN_MODELS[name].config
    embedding = config["vocab_size"] * config["hidden_size"]
    assert count.total == total
    assert len(count.layers) == config["num_hidden_layers"]
    assert {b.numel for b in count.layers} == {layer}
    assert count.embedding.numel == count.lm_head.numel == embedding  # untied
    assert count.total == len(count.layers) * layer + 2 * embedding + config["hidden_size"]  # + final norm


def test_count_of_a_real_module_matches_its_parameters():
    model = LlamaForCausalLM(tiny_llama_config(layers=2, vocab=256))
    count = count_parameters(model)
    assert count.total == sum(p.numel() for p in model.parameters())
    assert [b.name for b in count.layers] == ["model.layers.0.", "model.layers.1."]
    assert count.layers[0].numel == 4 * 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert count.layers[0].largest_tensor == 64 * 128
    assert count.layers[0].lora_dims == 4 * (64 + 64) + 3 * (64 + 128)


@pytest.mark.parametrize("as_dir", [False, True])
def test_config_json_path(tmp_path, as_dir):
    config = tiny_llama_config(layers=3, vocab=256)
    config.save_pretrained(tmp_path)
    path = tmp_path if as_dir else tmp_path / "config.json"
    expected = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    assert count_parameters(path).total == expected
    assert count_parameters(str(path)).total == expected
    assert estimate("adam", path).table1.total == 18 * expected


def test_bad_model_name_lists_the_choices():
    with pytest.raises(ValueError, match="llama2-7b, llama3-8b, llama2-13b, llama2-70b"):
        count_parameters("llama9-1b")
    with pytest.raises(ValueError, match="choose one of adam, badam, lora, lomo"):
        estimate("sgd", "llama2-7b")


# --- the paper's accounting ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILTIN_MODELS))
def test_adam_is_18M(name):
    m = count_parameters(name).total
    table1 = estimate("adam", name).table1
    assert (table1.parameters, table1.gradients, table1.states) == (2 * m, 4 * m, 12 * m)
    assert table1.total == 18 * m


@pytest.mark.parametrize(
    ("name", "blocks", "d"), [("llama2-7b", None, 32), ("llama2-7b", 8, 8), ("llama2-70b", None, 80)]
)
def test_badam_is_2M_plus_16M_over_D(name, blocks, d):
    m = count_parameters(name).total
    result = estimate("badam", name, blocks=blocks)
    assert result.num_blocks == d
    assert result.formula == "2M + 16M/D"
    assert result.table1.total == pytest.approx(2 * m + 16 * m / d, abs=2)
    assert result.table1.gradients == pytest.approx(4 * m / d, abs=1)
    assert result.table1.states == pytest.approx(12 * m / d, abs=2)


def test_table12_llama2_7b_in_decimal_gigabytes():
    result = estimate("badam", "llama2-7b")
    paper = {"parameters": 13.4, "gradients": 0.8, "states": 2.4}  # Table 12, GB
    ours_gb = {k: getattr(result.table12, k) / GB for k in paper}
    for key, value in paper.items():
        assert ours_gb[key] == pytest.approx(value, abs=0.1), key
    # GiB does not reproduce the table: 13.48e9 bytes are 12.55 GiB.
    assert abs(result.table12.parameters / 2**30 - paper["parameters"]) > 0.5
    # The paper's block is a real decoder layer (embedding and head frozen), not M/D.
    layer = 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    assert result.table12.gradients == 4 * layer
    assert result.table12.states == 12 * layer


def test_badam_ours_uses_the_peak_block():
    layer = 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    plain = estimate("badam", "llama2-7b").ours
    assert (plain.gradients, plain.master_copies) == (2 * layer, 4 * layer)
    assert plain.optimizer_states == 8 * layer + 4 * 9  # m, v and one step counter per tensor
    assert plain.transient == 4 * slice_numel(layer)  # one fp32 slice, 1/256 of the layer

    # The embedding as a block is one big tensor, but smaller than a layer: slices are sized by the
    # block, so the layer stays the peak.
    embedding = 32000 * 4096
    result = estimate("badam", "llama2-7b", include_embedding=True)
    assert result.num_blocks == 33 and embedding < layer
    assert (result.ours.gradients, result.ours.transient) == (2 * layer, 4 * slice_numel(layer))
    assert result.table12.gradients == round(4 * (32 * layer + embedding) / 33)


def test_lora_and_lomo():
    lora = estimate("lora", "llama2-7b", lora_rank=16)
    adapters = 16 * 32 * (4 * (4096 + 4096) + 3 * (4096 + 11008))
    m = 6_738_415_616
    assert lora.table1.total == 2 * m + 16 * adapters
    assert lora.table1.gradients == 4 * adapters
    lomo = estimate("lomo", "llama2-7b")
    assert lomo.table1.total == 2 * m + 2 * 32000 * 4096  # the embedding is the largest tensor


def test_bad_options():
    with pytest.raises(ValueError, match="between 1 and the 32 decoder layers"):
        estimate("badam", "llama2-7b", blocks=33)
    with pytest.raises(ValueError, match="rank must be positive"):
        estimate("lora", "llama2-7b", lora_rank=0)
    tied = tiny_llama_config()
    tied.tie_word_embeddings = True
    with pytest.raises(ValueError, match="no separate LM head"):
        estimate("badam", LlamaForCausalLM(tied), include_lm_head=True)


def test_methods_is_the_extension_point():
    assert list(METHODS) == ["adam", "badam", "lora", "lomo", "adam_mini", "badam_adam_mini"]


def test_adam_mini_estimates():
    m = count_parameters("llama2-7b").total
    layer = 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    full = estimate("adam_mini", "llama2-7b").table1
    assert (full.parameters, full.gradients, full.master_copies, full.optimizer_states) == (2 * m, 4 * m, 4 * m, 4 * m)
    assert full.total == 14 * m

    result = estimate("badam_adam_mini", "llama2-7b")
    assert (result.formula, result.num_blocks, result.table12) == ("2M + 12M/D", 32, None)
    assert result.table1.total == pytest.approx(2 * m + 12 * m / 32, abs=2)
    ours = result.ours
    assert (ours.gradients, ours.master_copies, ours.optimizer_states) == (2 * layer, 4 * layer, 4 * layer)
    assert ours.transient == 4 * slice_numel(layer)  # one fp32 slice
    badam = estimate("badam", "llama2-7b").ours
    assert ours.total < badam.total


def test_cli_shows_adam_mini(capsys):
    main(["--model", "llama2-7b", "--method", "badam_adam_mini"])
    out = capsys.readouterr().out
    assert "2M + 12M/D  (D = 32)" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("badam_adam_mini (peak block)"))
    assert row[-5:] == ["13.48", "0.40", "1.62", "0.00", "15.50"]


def test_adam_mini_estimate_agrees_with_held_bytes():
    from badam.adam_mini import AdamMini

    torch.manual_seed(0)
    model = LlamaForCausalLM(layer_heavy_config())  # fp32: the optimizer updates the weights, no masters
    optimizer = AdamMini.from_model(model, lr=1e-3)
    ids = torch.randint(0, 256, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    held = held_bytes(optimizer, model)
    table1 = estimate("adam_mini", model).table1
    assert held.gradients == table1.gradients
    assert held.optimizer_states == pytest.approx(table1.optimizer_states, rel=0.01)  # + v, 0.58%


def test_badam_adam_mini_estimate_agrees_with_block_optimizer():
    from badam import BlockOptimizer
    from badam.adam_mini import AdamMini

    enable_cpu_allocation_accounting()
    torch.manual_seed(0)
    model = LlamaForCausalLM(layer_heavy_config()).to(torch.bfloat16)
    optimizer = BlockOptimizer(AdamMini.from_model(model, lr=1e-3), list(model.named_parameters()), verbose=0)
    ids = torch.randint(0, 256, (2, 16))
    ours = estimate("badam_adam_mini", model).ours

    model(input_ids=ids, labels=ids).loss.backward()
    grads = held_bytes(optimizer, model)
    optimizer.step()
    after = held_bytes(optimizer, model)
    assert grads.gradients == ours.gradients
    assert after.master_copies == ours.master_copies
    assert after.optimizer_states == pytest.approx(ours.optimizer_states, rel=0.01)  # + v, 0.55%
    measured = grads.gradients + after.master_copies + after.optimizer_states
    assert measured == pytest.approx(ours.optimizer_held, rel=0.01)

    model(input_ids=ids, labels=ids).loss.backward()
    with track_peak("cpu") as peak:
        optimizer.step()
    assert 0 < peak.peak_delta_bytes <= ours.transient


# --- the command line ----------------------------------------------------------------------------


def test_cli_table(capsys):
    main(["--model", "llama2-7b"])
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in METHODS
    }
    assert rows["adam"][1:5] == ["13.48", "26.95", "80.86", "121.29"]
    assert rows["adam"][5] == "18M"
    assert rows["badam"][1:5] == ["13.48", "0.84", "2.53", "16.85"]
    assert " ".join(rows["badam"][5:]) == "2M + 16M/D (D = 32)"
    cells = {line.split("  ")[0]: line.split() for line in out.splitlines()}
    assert cells["paper (mean block)"][-5:] == ["13.48", "0.81", "2.43", "-", "16.71"]
    assert cells["ours (peak block)"][-5:] == ["13.48", "0.40", "2.43", "0.00", "16.31"]
    assert "parameters 13.4 GB, gradient 0.8 GB, optimizer states 2.4 GB" in out


def test_cli_json_and_config(tmp_path, capsys):
    config = tiny_llama_config(layers=2, vocab=256)
    config.save_pretrained(tmp_path)
    main(["--config", str(tmp_path / "config.json"), "--method", "badam", "--json"])
    payload = json.loads(capsys.readouterr().out)
    m = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    (badam,) = payload["estimates"]
    assert payload["n_params"] == m
    assert badam["num_blocks"] == 2
    assert badam["table1"]["total"] == 2 * m + 8 * m
    assert badam["ours"]["gradients"] == 2 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64)


def test_cli_bad_model(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "gpt-5"])
    assert exit_info.value.code == 2
    assert (
        "unknown model 'gpt-5': choose one of llama2-7b, llama3-8b, llama2-13b, llama2-70b" in capsys.readouterr().err
    )


TINY = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 128,
}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{bad", "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2"),
        ("[1, 2]", "expected a JSON object of config keys, got a JSON list"),
        (
            TINY | {"hidden_size": 100, "num_attention_heads": 3},
            "hidden_size 100 is not a multiple of num_attention_heads 3",
        ),
        (TINY | {"num_key_value_heads": 3}, "num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
        (TINY | {"intermediate_size": -5}, "intermediate_size is -5: a size cannot be negative"),
        (TINY | {"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer, got 0"),
        (
            {k: v for k, v in TINY.items() if k != "intermediate_size"},
            "no 'intermediate_size' key: transformers would use its default and count another model",
        ),
        ({k: v for k, v in TINY.items() if k != "model_type"}, "no 'model_type' key: cannot tell which architecture"),
        (TINY | {"model_type": "nonesuch"}, "unknown model_type 'nonesuch'"),
    ],
    ids=[
        "json",
        "not-an-object",
        "heads",
        "kv-heads",
        "negative",
        "zero-layers",
        "missing-size",
        "no-type",
        "bad-type",
    ],
)
def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {message}") and err.count("\n") == 1, err


def test_cli_missing_file_and_folder_without_config(tmp_path, capsys):
    for config, message in (
        (tmp_path / "nope.json", f"{tmp_path / 'nope.json'}: no such file or directory"),
        (tmp_path, f"{tmp_path / 'config.json'}: no such file"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["--config", str(config)])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == f"error: {message}\n"


def test_cli_bad_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "llama2-7b", "--blocks", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: blocks must be between 1 and the 32 decoder layers, got 0\n"


def test_cli_shows_no_traceback_unless_debugging(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY | {"vocab_size": -1}))
    message = f"{path}: vocab_size is -1: a size cannot be negative"
    command = [sys.executable, "-m", "badam.memory", "--config", str(path)]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2 and quiet.stderr == f"error: {message}\n"
    # Debugging lets the error through, so the interpreter prints its traceback.
    with pytest.raises(ValueError, match=message):
        main(["--config", str(path), "--debug"])
    monkeypatch.setenv("BADAM_DEBUG", "1")
    with pytest.raises(ValueError, match=message):
        main(["--config", str(path)])


# --- what an optimizer holds ---------------------------------------------------------------------


def test_held_bytes_torch_adamw_fp32():
    layer = torch.nn.Linear(100, 50)
    n = 100 * 50 + 50
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    layer(torch.randn(4, 100)).sum().backward()
    before = held_bytes(optimizer, layer)
    assert (before.parameters, before.gradients, before.master_copies, before.optimizer_states) == (4 * n, 4 * n, 0, 0)
    optimizer.step()
    after = held_bytes(optimizer, layer)
    # exp_avg and exp_avg_sq in fp32, plus one 4-byte step counter per parameter tensor
    assert after.optimizer_states == 2 * 4 * n + 2 * 4
    assert after.master_copies == 0
    assert after.optimizer_held == 4 * n + 8 * n + 8
    assert after.optimized_numel == n
    assert after.per_param()["optimizer_states"] == pytest.approx(8, abs=0.01)


def test_held_bytes_counts_masters_and_shared_storage_once():
    model = torch.nn.Linear(10, 10, bias=False).to(torch.bfloat16)
    master = model.weight.detach().float().requires_grad_()
    optimizer = torch.optim.SGD([master], lr=0.1, momentum=0.9)
    master.grad = torch.ones_like(master)
    optimizer.step()
    optimizer.state[master]["alias"] = optimizer.state[master]["momentum_buffer"][:5]  # a view: no new storage
    held = held_bytes(optimizer, model)
    assert held.parameters == 2 * 100
    assert held.master_copies == 4 * 100
    assert held.gradients == 4 * 100
    assert held.optimizer_states == 4 * 100


def test_badam_estimate_agrees_with_block_optimizer():
    from badam import BlockOptimizer

    enable_cpu_allocation_accounting()  # before any allocation whose free the peak should see
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(layers=2, vocab=256)).to(torch.bfloat16)
    base = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)
    optimizer = BlockOptimizer(base, list(model.named_parameters()), verbose=0)
    ids = torch.randint(0, 256, (2, 16))
    ours = estimate("badam", model).ours

    model(input_ids=ids, labels=ids).loss.backward()
    grads = held_bytes(optimizer, model)  # the bf16 gradients live only until the step consumes them
    optimizer.step()
    after = held_bytes(optimizer, model)
    assert after.gradients == 0
    assert grads.gradients == ours.gradients
    assert after.master_copies == ours.master_copies
    assert after.optimizer_states == pytest.approx(ours.optimizer_states, rel=0.01)
    measured = grads.gradients + after.master_copies + after.optimizer_states
    assert measured == pytest.approx(ours.optimizer_held, rel=0.01)
    assert after.per_param()["master_copies"] == 4

    # A later step allocates no state: its peak is one fp32 slice of the update, bounded by ours.
    model(input_ids=ids, labels=ids).loss.backward()
    with track_peak("cpu") as peak:
        optimizer.step()
    assert 0 < peak.peak_delta_bytes <= ours.transient
    assert peak.end_delta_bytes == -grads.gradients  # the consumed bf16 gradients


@pytest.mark.parametrize(
    ("name", "total", "blocks", "largest", "options"),
    [
        # 32 layers of attention (4096^2 x 2 + 4096 x 1024 x 2), router, 8 experts of 3 x 4096 x 14336
        ("mixtral-8x7b", 46_702_792_704, 32, 1_451_270_144, PartitionOptions()),
        ("mixtral-8x7b", 46_702_792_704, 96, 8 * 2 * 14336 * 4096, PartitionOptions(split_moe=True)),
        ("qwen3-30b-a3b", 30_532_122_624, 48, 623_120_640, PartitionOptions()),
        ("qwen3-30b-a3b", 30_532_122_624, 144, 128 * 2 * 768 * 2048, PartitionOptions(split_moe=True)),
        # transformers 5 always ties T5's LM head to its embedding: 2.78B, not the checkpoint's 2.85B.
        # Largest: decoder block 0, self- and cross-attention, gated FFN, 3 norms, relative position bias.
        ("flan-t5-xl", 2_783_959_040, 48, 8 * 2048**2 + 3 * 2048 * 5120 + 3 * 2048 + 32 * 32, PartitionOptions()),
        ("llava-1.5-7b", 7_063_427_072, 32, 202_383_360, PartitionOptions()),
        # + the CLIP tower's stem, 24 layers and head with the projector
        ("llava-1.5-7b", 7_063_427_072, 58, 202_383_360, PartitionOptions(include_vision_tower=True)),
    ],
)
def test_builtin_model_families(name, total, blocks, largest, options):
    count = count_parameters(name, options)
    assert (count.total, len(count.layers), max(b.numel for b in count.layers)) == (total, blocks, largest)
    badam = estimate("badam", name, partition=options)
    assert badam.num_blocks == blocks
    assert badam.ours.master_copies == 4 * largest


def test_family_config_paths_count_the_class_their_architectures_name(tmp_path):
    for family in ("t5", "llava", "qwen3-moe"):
        model = build(family)
        model.config.save_pretrained(tmp_path / family)
        count = count_parameters(tmp_path / family)
        assert count.total == sum(p.numel() for p in model.parameters()), family


def test_split_moe_estimate_agrees_with_block_optimizer():
    from badam import BlockOptimizer

    model = build("mixtral").to(torch.bfloat16)
    ours = estimate("badam", model, partition=PartitionOptions(split_moe=True)).ours
    base = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)
    optimizer = BlockOptimizer(base, list(model.named_parameters()), split_moe=True, start_block=1, verbose=0)
    assert optimizer.block_prefixes[1] == ["model.layers.0.mlp.experts.gate_up_proj"], "the largest block"
    ids = torch.randint(0, 128, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    assert held_bytes(optimizer, model).gradients == ours.gradients
    optimizer.step()
    after = held_bytes(optimizer, model)
    assert (after.master_copies, after.optimizer_states) == (ours.master_copies, ours.optimizer_states)


def test_cli_partition_options(capsys):
    main(["--model", "mixtral-8x7b", "--method", "badam", "--split-moe"])
    out = capsys.readouterr().out
    assert "96 layer blocks" in out and "(D = 96 blocks)" in out
    main(["--model", "llava-1.5-7b", "--method", "badam", "--include-vision-tower"])
    assert "58 layer blocks" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--model", "llama2-7b", "--split-moe"])
    assert "error: split_moe=True but no layer holds mixture-of-experts modules" in capsys.readouterr().err


# --- peak tracking -------------------------------------------------------------------------------


def test_track_peak_known_pattern():
    with track_peak("cpu") as peak:
        a = torch.empty(1 * MB, dtype=torch.uint8)
        b = torch.empty(2 * MB, dtype=torch.uint8)
        c = torch.empty(3 * MB, dtype=torch.uint8)
        del b  # 4 MB live
        d = torch.empty(4 * MB, dtype=torch.uint8)  # 8 MB live: the peak
        del c  # 5 MB live at exit
    assert peak.peak_delta_bytes == 8 * MB
    assert peak.end_delta_bytes == 5 * MB
    del a, d


def test_track_peak_sees_frees_of_earlier_memory():
    enable_cpu_allocation_accounting()
    old = torch.empty(4 * MB, dtype=torch.uint8)
    with track_peak("cpu") as peak:
        del old  # -4 MB
        new = torch.empty(6 * MB, dtype=torch.uint8)  # +2 MB over the entry
    assert peak.peak_delta_bytes == 2 * MB
    assert peak.end_delta_bytes == 2 * MB
    del new


def test_track_peak_rejects_other_devices():
    with pytest.raises(ValueError, match="cpu and cuda"):
        with track_peak("meta"):
            pass


def test_storage_bytes_counts_each_storage_once_through_nesting():
    from badam.memory import storage_bytes

    flat = torch.zeros(100)  # 400 bytes
    views = [flat[:50], flat[50:]]
    state = {"exp_avg": torch.zeros(10, dtype=torch.bfloat16), "step": torch.tensor(3.0)}
    assert storage_bytes([views, {"a": state}, None, flat]) == 400 + 20 + 4
