"""The CMDB: ``infrastructure.events`` (assets, dependencies) as a versioned graph."""
