"""One module per HTTP client library behind fetcher/transport.py's interface; only the chosen one is imported."""
