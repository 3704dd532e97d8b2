"""Hand-crafted filters and the stride / padding / filter-size settings (document 3.2.3–3.2.7).

Every setting cross-correlates a grayscale image with a fixed filter; its row in the size
table compares the measured output size with n' = floor((n + 2p − f)/s) + 1.

The edge filter is the 3×3 Laplacian: one isotropic, zero-sum kernel, so each setting gives
one linear feature map (Sobel needs an x and a y kernel and a nonlinear magnitude).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from ...conv_arithmetic import output_size
from .conv_basics import correlate

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def default_settings() -> dict:
    """The document's settings. Its padding values are lost in the text ("the required
    padding is . So we tested with ."); for f = 3 we take the standard trio: low = 0
    ("valid"), equal = (f − 1)/2 = 1 ("same": every pixel is a window centre), high =
    f − 1 = 2 ("full": every window that overlaps the image by one pixel)."""
    return {
        "edge_filter": "laplacian",
        "gaussian_sigma": None,  # None: OpenCV's rule from the size (see gaussian_kernel)
        "stride": {"image_size": 224, "filter_size": 3, "padding": 0, "values": [1, 2, 5, 6]},
        "padding": {"image_size": 150, "filter_size": 3, "stride": 4,
                    "values": {"low": 0, "equal": 1, "high": 2}},
        "size": {"image_size": 224, "stride": 1, "padding": 0, "values": [3, 5, 21, 35]},
    }


def default_sigma(size: int) -> float:
    """OpenCV's sigma for a Gaussian of ``size`` (``cv2.getGaussianKernel`` with sigma <= 0)."""
    return 0.3 * ((size - 1) * 0.5 - 1) + 0.8


def gaussian_kernel(size: int, sigma: float | None = None) -> torch.Tensor:
    """A ``(size, size)`` Gaussian summing to 1. The document gives no sigma; ``None`` takes
    OpenCV's default for a size, 0.3·((size − 1)/2 − 1) + 0.8 (3 → 0.8, 35 → 5.6), so a
    larger filter blurs more, as the document's figure 3.2 shows."""
    if sigma is None:
        sigma = default_sigma(size)
    axis = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-axis ** 2 / (2 * sigma ** 2))
    kernel = torch.outer(g, g)
    return kernel / kernel.sum()


def edge_kernel(name: str = "laplacian", size: int = 3) -> torch.Tensor:
    if name != "laplacian" or size != 3:
        raise ValueError(f"edge filter: only the 3×3 'laplacian' is defined, not {name!r} "
                         f"of size {size}")
    return LAPLACIAN.clone()


def _resize(gray: torch.Tensor, size: int) -> torch.Tensor:
    if gray.shape[-1] == size and gray.shape[-2] == size:
        return gray
    return F.interpolate(gray, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


def _row(experiment: str, filter_name: str, setting: str, gray: torch.Tensor,
         kernel: torch.Tensor, stride: int, padding: int) -> tuple[dict, np.ndarray]:
    n, f = gray.shape[-1], kernel.shape[-1]
    with torch.no_grad():
        fmap = correlate(gray, kernel.view(1, 1, f, f), stride=stride, padding=padding)
    formula = output_size(n, f, stride=stride, padding=padding)
    measured = fmap.shape[-1]
    return {"experiment": experiment, "filter": filter_name, "setting": setting,
            "input_size": n, "filter_size": f, "stride": stride, "padding": padding,
            "formula_size": formula, "measured_size": measured, "match": formula == measured,
            # exact: (n + 2p − f) divisible by s, i.e. the last window ends on the (padded)
            # border; otherwise the floor drops the last (n + 2p − f) mod s pixels
            "leftover": (n + 2 * padding - f) % stride}, fmap[0, 0].numpy()


def settings_experiment(gray: torch.Tensor, settings: dict | None = None
                        ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """All stride, padding and filter-size settings on one grayscale image ``(1, 1, H, W)``.

    Returns the size table (one row per setting and filter) and the feature maps keyed
    ``"<experiment>/<filter>/<setting>"`` (e.g. ``"stride/gaussian/s5"``).
    """
    cfg = copy.deepcopy(settings or default_settings())
    sigma = cfg.get("gaussian_sigma")
    rows, maps = [], {}

    def add(experiment, name, setting, image, kernel, stride, padding):
        row, fmap = _row(experiment, name, setting, image, kernel, stride, padding)
        rows.append(row)
        maps[f"{experiment}/{name}/{setting}"] = fmap

    for experiment in ("stride", "padding"):
        c = cfg[experiment]
        image, f = _resize(gray, c["image_size"]), c["filter_size"]
        kernels = {"edge": edge_kernel(cfg["edge_filter"], f), "gaussian": gaussian_kernel(f, sigma)}
        for name, kernel in kernels.items():
            if experiment == "stride":
                for s in c["values"]:
                    add(experiment, name, f"s{s}", image, kernel, s, c["padding"])
            else:
                for label, p in c["values"].items():
                    add(experiment, name, f"{label}_p{p}", image, kernel, c["stride"], p)
    c = cfg["size"]
    image = _resize(gray, c["image_size"])
    for f in c["values"]:
        add("size", "gaussian", f"f{f}", image, gaussian_kernel(f, sigma), c["stride"],
            c["padding"])
    return pd.DataFrame(rows), maps
