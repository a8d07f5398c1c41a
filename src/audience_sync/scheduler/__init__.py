"""Which audiences are due, and the tick that queues and starts their jobs."""
