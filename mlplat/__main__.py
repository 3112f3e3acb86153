"""``python -m mlplat``: the same as the ``mlplat`` console script."""

from mlplat.cli import main

main()
