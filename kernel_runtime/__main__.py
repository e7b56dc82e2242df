"""`python -m kernel_runtime` is the `nbmesh` command."""

from .cli import main

main()
