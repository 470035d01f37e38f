"""Fine-tuning jobs: create and control (`create`), the worker's steps
(`runner`, `submit`, `watch`, `finish`, `splits`), their schedule and locks, and views."""
