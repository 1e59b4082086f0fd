"""nudask datasets: partitioned Parquet files plus a manifest."""

from .read import Dataset, open_dataset

__all__ = ["Dataset", "open_dataset"]
