"""What the warehouse says: chargeback, spend, unit economics, forecasts, budgets, anomalies, what-ifs.

Each function takes a warehouse (or connection) and typed parameters and returns a polars
DataFrame; nothing here prints, draws, or knows where the data came from. Imports only the
warehouse layer and the shared core (config, periods, exceptions).
"""
