"""Self-healing: alerts to incidents, root cause from the CMDB, guarded remediation,
verified recovery."""
