"""Dataset loaders (one module per distributed layout) and their registry."""

from ferbench.data.base import DatasetLoader, Sample, read_image_file
from ferbench.data.registry import dataset_names, get_dataset, register_dataset

__all__ = ["DatasetLoader", "Sample", "dataset_names", "get_dataset", "read_image_file", "register_dataset"]
