"""Dashboards and alerts of trtserve, as code (development only; nothing here ships in an
image): the Grafana dashboards are built with Grafana's Foundation SDK
(:mod:`.dashboards`), the Prometheus alerts are data (:mod:`.alerts`), and
``python -m trtserve_observability`` writes both into the chart (``make observability``).
A test fails when the committed files differ from what this package generates."""
