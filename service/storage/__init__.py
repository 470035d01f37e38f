"""Dataset bytes: `file://` and `s3://` behind one async interface (`ObjectStorage`), chosen by
`TUNEGATE_STORAGE_URL`; the only importer of obstore."""

from service.storage.base import (
    ObjectMissing,
    ObjectStorage,
    ObjectWriter,
    dataset_key,
    open_storage,
)

__all__ = ["ObjectMissing", "ObjectStorage", "ObjectWriter", "dataset_key", "open_storage"]
