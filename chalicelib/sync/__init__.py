"""One sync: request, observe, desire, diff, copy, tag, report; and the `ghcr2ecr sync` command."""
