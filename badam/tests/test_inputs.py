"""Misuse of BlockOptimizer's and BlockOptimizerRatio's arguments: clear errors that name the argument."""

import warnings

import pytest
import torch
from badam_tiny import tiny_llama, train

from badam import BlockOptimizer, BlockOptimizerRatio


def block_optimizer(model, named=None, **kwargs):
    named = list(model.named_parameters()) if named is None else named
    return BlockOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-3), named, verbose=0, **kwargs)


def test_named_parameters_list_takes_pairs_and_a_generator():
    model = tiny_llama()
    optimizer = block_optimizer(model, named=model.named_parameters())
    assert optimizer.num_blocks == 2
    train(model, optimizer, 1)
    with pytest.raises(TypeError, match=r"named_parameters_list must hold \(name, parameter\) pairs.*a bare tensor"):
        block_optimizer(tiny_llama(), named=list(model.parameters()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"block_prefix_list": "model.layers.0."},
            r"block_prefix_list must be a list of blocks, each a name prefix or a list of them.*got 'model.layers.0.'",
        ),
        ({"start_block": 1.5}, r"start_block must be a block index \(an integer\) or None, got 1.5"),
        ({"start_block": 2}, r"start_block=2 is out of range: there are 2 blocks \(0..1\)"),
        ({"start_block": -1}, r"start_block=-1 is out of range"),
        ({"switch_block_every": 0}, "switch_block_every must be a positive integer, got 0"),
        ({"switch_block_every": -5}, "switch_block_every must be a positive integer, got -5"),
        ({"switch_block_every": 2.5}, "switch_block_every must be a positive integer, got 2.5"),
        ({"switch_mode": "cyclic"}, "unknown switch_mode 'cyclic'; choose one of random, ascending, descending, fixed"),
        ({"active_modules": "lm_head"}, r"active_modules must be a list of name substrings, e.g. \['lm_head'\]"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        block_optimizer(tiny_llama(), **kwargs)


def test_an_active_modules_entry_that_matches_nothing_is_refused_with_close_names():
    with pytest.raises(
        ValueError, match="active_modules entry 'lm_haed' matches no trainable parameter name.*close names: 'lm_head'"
    ):
        block_optimizer(tiny_llama(), active_modules=["model.norm.", "lm_haed"])
    optimizer = block_optimizer(tiny_llama(), active_modules=["lm_head"])
    assert [optimizer.name_of[p] for p in optimizer.always_active] == ["lm_head.weight"]
    model = tiny_llama()
    model.lm_head.requires_grad_(False)
    with pytest.raises(
        ValueError, match="entry 'lm_head' matches no trainable .*only frozen ones, e.g. 'lm_head.weight'"
    ):
        block_optimizer(model, active_modules=["lm_head"])


def test_a_block_prefix_that_swallows_other_layers_warns_once():
    model = tiny_llama(layers=12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer = block_optimizer(model, block_prefix_list=[["model.layers.1"], ["model.layers.0."]])
    (warning,) = caught
    assert "'model.layers.1' also matches 'model.layers.10.', 'model.layers.11.'" in str(warning.message)
    assert "end it with a dot ('model.layers.1.')" in str(warning.message)
    assert {optimizer.name_of[p].split(".")[2] for p in optimizer.blocks[0]} == {"1", "10", "11"}


def ratio_optimizer(model, named=None, **kwargs):
    named = list(model.named_parameters()) if named is None else named
    return BlockOptimizerRatio(model.parameters(), named, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"update_ratio": 0}, r"update_ratio must be in \(0, 1\], got 0"),
        ({"update_ratio": 1.01}, r"update_ratio must be in \(0, 1\], got 1.01"),
        ({"update_ratio": "0.1"}, r"update_ratio must be in \(0, 1\], got '0.1'"),
        ({"update_ratio": float("nan")}, r"update_ratio must be in \(0, 1\], got nan"),
        ({"mask_mode": "random"}, "unknown mask_mode 'random'; choose one of adjacent, scatter"),
        ({"switch_every": 0}, "switch_every must be a positive integer, got 0"),
        ({"switch_every": -1}, "switch_every must be a positive integer, got -1"),
        (
            {"param_update_ratios": {"lm_head.": True}},
            r"param_update_ratios\['lm_head.'\] must be in \(0, 1\], got True",
        ),
    ],
)
def test_bad_ratio_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ratio_optimizer(tiny_llama(), **kwargs)


def test_ratio_named_parameters_list_takes_pairs_and_a_generator():
    model = tiny_llama()
    with pytest.raises(TypeError, match=r"\(name, parameter\) pairs.*model.parameters\(\) instead of"):
        ratio_optimizer(model, named=list(model.parameters()))
    optimizer = ratio_optimizer(model, named=model.named_parameters(), include_lm_head=True)
    assert [entry.name for entry in optimizer.entries][-1] == "lm_head.weight"
