"""The operator's reactions to the cluster: the informers' callbacks (:mod:`.changes`),
the read view over the adapter's caches (:mod:`.view`), retries and kopf's settings.

Handlers only turn what changed into service calls. kopf runs the process (login,
startup, cleanup, health: :mod:`trtserve_operator.cli`) and watches nothing itself.
"""
