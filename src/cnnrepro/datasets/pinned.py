"""SHA-256 of every file the pipeline reads, kept in the repository.

A mirror's own ``SHA256SUMS`` is its author's word: a swapped archive with a matching
line there would pass. So each file is checked against these pins first, and the
manifest must agree as a second opinion. torchvision's cache under ``data.download_root``
(the IDX files MNIST and Fashion-MNIST are read from, extracted or downloaded) is pinned
too: torchvision itself only checks that those files exist.

The values were computed from the staged mirror (``../shared/datasets``), whose MNIST and
Fashion-MNIST files match the official ones by md5 (its README); an ``*-ubyte`` pin is the
SHA-256 of the decompressed official file, so it holds for a download too. Not pinned:
torchvision's CIFAR-10 and Caltech-101 downloads (no official SHA-256 is at hand offline;
torchvision checks CIFAR-10's batch files by md5 on every read, Caltech-101's archive
when it downloads it).
"""

from __future__ import annotations

# path inside a mirror -> sha256
MIRROR: dict[str, str] = {
    "caltech101-3class.tar.gz":
        "6b19392fc7c7d020a2c9d829424b99bd29bcbd496b9d8b585df212ad51fcde49",
    "cifar10-jpeg.tar.gz":
        "cf10c814397e11f5eb692c796198f868e31a87ec95fbb0fe2e3c11bcc7dcfb74",
    "fashion-mnist/t10k-images-idx3-ubyte.gz":
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz":
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "fashion-mnist/train-images-idx3-ubyte.gz":
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "fashion-mnist/train-labels-idx1-ubyte.gz":
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "mnist/t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "mnist/train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
}

# dataset -> {path under data.download_root -> sha256}: the files torchvision reads
CACHE: dict[str, dict[str, str]] = {
    "mnist": {
        "MNIST/raw/train-images-idx3-ubyte":
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "MNIST/raw/train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "MNIST/raw/train-labels-idx1-ubyte":
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "MNIST/raw/train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "MNIST/raw/t10k-images-idx3-ubyte":
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "MNIST/raw/t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "MNIST/raw/t10k-labels-idx1-ubyte":
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "MNIST/raw/t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "FashionMNIST/raw/train-images-idx3-ubyte":
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "FashionMNIST/raw/train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "FashionMNIST/raw/train-labels-idx1-ubyte":
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "FashionMNIST/raw/train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "FashionMNIST/raw/t10k-images-idx3-ubyte":
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "FashionMNIST/raw/t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "FashionMNIST/raw/t10k-labels-idx1-ubyte":
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "FashionMNIST/raw/t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
