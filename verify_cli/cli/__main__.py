"""`python -m verify_cli.cli`: the same as the `faceverify` console script."""

from verify_cli.cli.app import main

main()
