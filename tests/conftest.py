"""Test set-up: 8 simulated CPU devices so sharding code is exercised on one machine."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker more than cores (pyproject caps it at 4). XLA compiles on one
    thread, so the spare worker keeps both cores of a small machine busy while another
    compiles; each worker runs whole files (`--dist loadfile`)."""
    return (os.cpu_count() or 1) + 1
