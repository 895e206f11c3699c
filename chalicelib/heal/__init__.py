"""Healing lossy events: redeliver failed deliveries, reconcile every mirrored package, backfill."""
