"""Request and response models of the HTTP API: tunegate's own
(`common`), the fine-tuning jobs' (`jobs`) and the sweeps' (`sweeps`)."""
