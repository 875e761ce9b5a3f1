"""`python -m rostra` is the `rostra` command."""

from rostra.cli import main

main()
