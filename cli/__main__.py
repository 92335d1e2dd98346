"""``python -m dharma.cli`` is the ``dharma`` command."""

from dharma.cli import main

main()
