"""Usage records, summaries and time series, and the model price list (``usage.v1.UsageService``)."""
