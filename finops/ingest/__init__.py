"""Orchestration of loads: the ``[[sources]]`` of finops.toml and the connector for each kind.

The connectors themselves live in the top-level ``connectors`` package.
"""
