"""Test set-up: 8 simulated CPU devices so sharding code is exercised on one machine."""

import os

# LLVM -O2 for the CPU programs, as the suite's command line (experiments.xla_flags)
os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=2"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
