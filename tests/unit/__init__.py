"""Fast in-process unit tests of the pure rules: no kernels, no server processes, no sleeps."""
