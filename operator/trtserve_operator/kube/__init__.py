"""Kubernetes adapter: the only package that talks to the API server.

:mod:`.client` holds the implementation (aiohttp), :mod:`.credentials` the one source of
credentials (for kopf's login too); :mod:`.port` is the interface the services use,
:mod:`.errors` the typed errors. Only the composition root (the CLI)
imports :mod:`.client`, so no other layer depends on the HTTP client, even indirectly.
"""
