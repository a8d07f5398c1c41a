"""The sync engine: run one job end to end, checkpoint, resume, record metrics."""
