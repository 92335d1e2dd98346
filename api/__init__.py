"""The read API and live page over what the pipeline knows.

One process (``dharma api serve``; started by ``dharma up``) serves REST + JSON
under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``), live Server-Sent Events, and
the page at ``/``.  It only reads: stores through the sinks, topics through a Kafka
consumer of its own.  Every request but the health check carries a token and is
decided by the trust engine's policies as resource ``api/<path>``, action ``read``.
"""
