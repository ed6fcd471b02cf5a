"""Reading, checking and storing market data: sources, features, partitions, ingest."""
