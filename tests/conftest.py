import numpy as np
import pytest

import augkit as ak
from augkit.images import sample_images


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real bundled photographs, HWC uint8, several sizes (non-square included)."""
    return sample_images()


@pytest.fixture
def seed_pipe() -> ak.Pipeline:
    return ak.default_pipeline(seed=0)
