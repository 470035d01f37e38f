"""Fine-tuning jobs, pure: the request body, its checks under the org's
policy, the state machine, polling, and step metrics."""
