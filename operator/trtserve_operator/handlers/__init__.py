"""kopf handlers of the operator (``kopf run -m trtserve_operator.handlers``).

Handlers only turn kopf's arguments into typed objects and call the services; kopf's
in-memory indexes are the services' read cache (:class:`.view.IndexView`).
"""

from trtserve_operator.handlers import benchmarks, lifecycle, monitoring, trtmodels, watches

__all__ = ["benchmarks", "lifecycle", "monitoring", "trtmodels", "watches"]
