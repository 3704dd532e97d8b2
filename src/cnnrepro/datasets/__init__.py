"""Datasets: fetch (torchvision download or verified offline mirror), prepare, load.

One concern per module, behind this facade:

* :mod:`.catalogue`: what each dataset is (``SPECS``) and how its config options are read;
* :mod:`.sources`: which source is in force (:func:`data_source`), the mirror's checksums,
  the download lock;
* :mod:`.readers`: decoding one split from the mirror or a torchvision download;
* :mod:`.prepared`: the cached ``.npz`` of a split (:func:`prepare_split`,
  :func:`load_split`) and the subsets drawn from it.
"""

from .catalogue import (
                        CIFAR10_CLASSES,
                        SPECS,
                        DataError,
                        DatasetSpec,
                        check_options,
                        class_names,
                        estimate_sizes,
                        input_shape,
                        options,
)
from .prepared import Split, holdout_split, load_split, per_class_subset, prepare_split
from .readers import caltech_split_indices, check_source, split_sizes
from .sources import MIRROR_ENV, DataSource, data_source, download_lock, verify_mirror

__all__ = ["CIFAR10_CLASSES", "MIRROR_ENV", "SPECS", "DataError", "DataSource", "DatasetSpec",
           "Split", "caltech_split_indices", "check_options", "check_source", "class_names",
           "data_source", "download_lock", "estimate_sizes", "holdout_split", "input_shape",
           "load_split", "options", "per_class_subset", "prepare_split", "split_sizes",
           "verify_mirror"]
