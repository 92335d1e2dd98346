"""Infrastructure: the embedded stack, the embedded schema registry, deployment files."""
