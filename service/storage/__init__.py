"""Dataset bytes: `file://` and `s3://` behind one async interface (`ObjectStorage`), chosen by
`TUNEGATE_STORAGE_URL`; the only importer of obstore."""

from service.storage.base import (
    ObjectMissing,
    ObjectStorage,
    ObjectWriter,
    StoredObject,
    dataset_key,
    open_storage,
    parse_dataset_key,
)

__all__ = [
    "ObjectMissing",
    "ObjectStorage",
    "ObjectWriter",
    "StoredObject",
    "dataset_key",
    "open_storage",
    "parse_dataset_key",
]
