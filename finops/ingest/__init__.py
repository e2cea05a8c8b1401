"""Orchestration of loads: the ``[[sources]]`` of finops.toml and the connector for each kind.

:mod:`finops.ingest.registry` holds the one :class:`~finops.ingest.registry.Connector` per kind
(``REGISTRY``) that ``finops ingest``, ``finops run`` and ``finops demo`` all load through;
:mod:`finops.ingest.sources` runs a source and reports on it. The connectors themselves live in
the top-level ``connectors`` package (their shared file loop and quarantine: ``connectors.staging``).
"""
