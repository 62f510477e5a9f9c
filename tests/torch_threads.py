"""One torch thread for the training tests (import `one_torch_thread` into a test module: autouse).

The machine is shared and the nets are small: one thread was faster than two (measured), and a
fixed thread count keeps torch's reduction order the same from run to run."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
