"""`sofamon`: the command on top of the fetcher, processor and notifier (which never import it)."""
