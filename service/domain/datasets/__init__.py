"""Fine-tuning datasets, pure: streaming validation of JSONL, the
formats, chat checks, token counts, PII in lines, the report, and validation splits."""
