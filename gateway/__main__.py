"""`python -m gateway` runs the `distill` command."""

from gateway.cli import main

main()
