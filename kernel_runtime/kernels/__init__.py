"""Everything about kernel processes: the sandbox, the launcher, the in-kernel runner, the protocol, the pool.

Kept empty on purpose: every kernel imports :mod:`kernel_runtime.kernels.runner` through it.
"""
