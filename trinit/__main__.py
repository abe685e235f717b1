"""``python -m trinit``: the same as the ``trinit`` command."""

from .boot.main import main

main()
