"""The workflow hand-off: a job's Actions OIDC ID token proves who hands over its GITHUB_TOKEN for one copy."""
