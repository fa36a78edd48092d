import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per xdist worker: workers share the machine's cores
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
