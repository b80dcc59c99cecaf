"""One torch thread per test module: on 2 shared cores, two intra-op threads contend and
run some of these tests 20x slower (a 3-epoch autoencoder fit: 2.4 s vs 56 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
