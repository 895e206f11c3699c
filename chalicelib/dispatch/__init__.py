"""Dispatch: a queued Job -> tenant settings -> destination -> installation token -> StartBuild."""
