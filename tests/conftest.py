"""Test isolation shared by every test module."""

import os
import sys

import pytest


@pytest.fixture(autouse=True)
def _no_shared_wandb_service():
    """An in-process ``wandb.init`` starts a W&B service and exports ``WANDB_SERVICE``; training
    jobs launched later as subprocesses would inherit it and write into that service's streams.
    Shut it down after each test so every launched job has its own, as it has outside the tests."""
    yield
    if "wandb" in sys.modules and os.environ.get("WANDB_SERVICE"):
        sys.modules["wandb"].teardown()
    os.environ.pop("WANDB_SERVICE", None)
