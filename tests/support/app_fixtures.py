"""Fixtures for the App: moto server, GitHub stand-in, signed deliveries."""
