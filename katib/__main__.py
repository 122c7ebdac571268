"""``python -m katib``: the same as the ``katib`` command."""

from katib.cli import main

main()
