"""Self-healing: alerts to incidents, root cause, guarded remediation, verified recovery."""
