"""``python -m dharma.streams.cli`` is the ``dharma`` command."""

from dharma.streams.cli import main

main()
