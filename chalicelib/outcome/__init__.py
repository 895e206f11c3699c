"""A finished build -> the tenant's check run, storage records, and the outcome log line."""
