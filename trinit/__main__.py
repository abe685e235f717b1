"""``python -m trinit``: the same as the ``trinit`` console script."""

from .boot.main import main

main()
