"""kopf handlers of the operator (``kopf run -m trtserve_operator.handlers``).

Handlers only turn kopf's arguments into typed objects and call the services; kopf's
in-memory indexes (TRTModels, benchmark Jobs) and the adapter's informer caches
(Deployments, Services, ConfigMaps, Pods) are the services' read cache (:class:`.view.IndexView`);
:mod:`.children` turns the informers' changes into service calls.
"""

from trtserve_operator.handlers import benchmarks, lifecycle, trtmodels

__all__ = ["benchmarks", "lifecycle", "trtmodels"]
