"""What the fetcher, processor and notifier share: settings, models, storage, Redis keys."""
