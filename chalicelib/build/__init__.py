"""The build: its contract with dispatch and on_build_state, and its commands (run-job, revoke-token, store-report)."""
