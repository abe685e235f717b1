"""``python -m trinit``: the same as the ``trinit`` console script."""

from ._cli import main

main()
