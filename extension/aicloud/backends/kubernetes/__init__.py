"""The Kubernetes backend: the same job spec as Jobs, Services and TrainJobs on a cluster.

- :mod:`.builders`: pure ``make_*()`` functions from a job spec to manifests (plain dicts);
- :mod:`.shapes`: the catalog, quota and image checks, and each pod's resources;
- :mod:`.controller`: create, watch, cancel (kubernetes_asyncio, imported lazily);
- :mod:`.logs`: every pod's log into the attempt's log, behind rank prefixes;
- :mod:`.explain`: why an attempt is still pending, from events and pod statuses;
- :mod:`.backend`: :class:`KubernetesBackend`, registered as ``kubernetes``.

Only :mod:`.controller` and :mod:`.logs` need the ``k8s`` extra (``kubernetes_asyncio``).
"""
