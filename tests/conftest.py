import os

import pytest


@pytest.fixture(scope="session")
def seed():
    """Seed for random test data; set OCTET_SEED to reproduce or vary a run."""
    return int(os.environ.get("OCTET_SEED", "1"))
