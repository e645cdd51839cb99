"""``python -m editkit`` runs the command line."""

from editkit.cli import main

main()
