"""The sample company and its gateway: exports written the way the providers write them.

Loaded through the real connectors by ``finops demo``; nothing else depends on it.
"""
