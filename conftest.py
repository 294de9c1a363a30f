"""Fixtures for every test directory of the repository (pytest's rootdir is here)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    # The test models are tiny: extra threads only spin, and slow to a crawl on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
