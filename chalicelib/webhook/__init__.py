"""The webhook route: its edge (verify, decide, enqueue, answer) and the pure event -> Job decision."""
