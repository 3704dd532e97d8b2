"""Datasets: fetch (torchvision download or verified offline mirror), prepare, load.

One concern per module, behind this facade:

* :mod:`.catalogue`: what each dataset is (``SPECS``) and how its config options are read;
* :mod:`.sources`: which source is in force (:func:`data_source`), the mirror's checksums,
  the download lock;
* :mod:`.readers`: decoding one split from the mirror or a torchvision download;
* :mod:`.prepared`: the cached ``.npz`` of a split (:func:`prepare_split`,
  :func:`load_split`) and the subsets drawn from it. It holds torch tensors and is
  imported from ``cnnrepro.datasets.prepared`` where it is used, not re-exported here:
  what only reads the catalogue (the config checks, figure jobs) imports no torch.
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
from .readers import caltech_split_indices, check_source, split_sizes
from .sources import MIRROR_ENV, DataSource, data_source, download_lock, verify_mirror

__all__ = ["CIFAR10_CLASSES", "MIRROR_ENV", "SPECS", "DataError", "DataSource", "DatasetSpec",
           "caltech_split_indices", "check_options", "check_source", "class_names",
           "data_source", "download_lock", "estimate_sizes", "input_shape", "options",
           "split_sizes", "verify_mirror"]
