"""Study ``vdk``: its figures, each drawn from the stages' data files.

A figure's name is its function's name, its file (``results/report/vdk/<name>.png``) and
its report entry; the decorator beside each function gives its caption, the paper artifact
it reproduces and the files it reads.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...io import read_csv, read_json, read_npz
from ...paths import FIRST, StudyFiles
from ...plotting import (
    attack_check_curves,
    confusion_panel,
    image_panel,
    randomisation_curves,
    randomisation_strip,
)
from ...study import Figures
from .names import IMMUNE

FIGURES = Figures()


# The original's panels (Captum's CIFAR tutorial): absolute maps for Saliency and the
# SmoothGrad² tunnel, signed maps (sign="all") for IG and DeepLift; the absolute IG and
# DeepLift beside them compare all four methods on one scale.
PANELS = (("saliency", "absolute_value"), ("integrated_gradients", "absolute_value"),
          ("integrated_gradients", "all"), ("ig_smoothgrad_sq", "absolute_value"),
          ("deeplift", "absolute_value"), ("deeplift", "all"))
SHORT = {"saliency": "saliency", "integrated_gradients": "IG", "ig_smoothgrad_sq": "IG-SG²",
         "deeplift": "DeepLift"}
# The sanity claims (claims.py) listed under the figures they test.
ATTRIBUTION_CHECKS = ("vdk.sanity.randomisation.", "vdk.sanity.class_sensitivity.",
                      "vdk.sanity.ig_completeness.")
ATTACK_CHECKS = ("vdk.sanity.rise.", "vdk.sanity.pgd_excess.", "vdk.sanity.noise_share.")


def _attribution_panel(data, index: int, method: str, sign: str, fig_ax) -> None:
    """Captum's blended heat map of one image's attribution (channels summed, scaled by
    the 98th percentile as Captum does), as the original drew it."""
    from captum.attr import visualization as viz

    image = data["images"][index].transpose(1, 2, 0) / 255
    viz.visualize_image_attr(data[method][index].transpose(1, 2, 0), image,
                             method="blended_heat_map", sign=sign, plt_fig_axis=fig_ax,
                             use_pyplot=False)


def _panel_title(method: str, sign: str) -> str:
    return f"{SHORT[method]} ({'signed' if sign == 'all' else '|·|'})"


@FIGURES.register(
    "Attributions of the paper's car image (official test index 9), one row per model, drawn "
    "as the original drew them (Captum's blended heat maps): Saliency, NoiseTunnel(IG, "
    "SmoothGrad², stdev {attribution[nt_stdev]}) as absolute values, Integrated Gradients and "
    "DeepLift (zero baselines) signed (green positive, red negative) and as absolute values.",
    "Fig. 7 (vdk.fig7)", ("attributions",), per_seed=True,
    checks=ATTRIBUTION_CHECKS)
def vdk_attributions(files: StudyFiles) -> plt.Figure:
    models, seed = files.models, files.seeds[0]
    fig, axes = plt.subplots(len(models), len(PANELS) + 1,
                             figsize=(2.0 * (len(PANELS) + 1), 2.2 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        data = read_npz(files.run("attributions", model, seed))
        p_true = data["probs"][0, data["labels"][0]]  # the car comes first
        image_panel(data["images"][0], f"{model}\np(car) = {p_true:.2f}", (fig, row[0]),
                    fontsize=8)
        for ax, (method, sign) in zip(row[1:], PANELS):
            _attribution_panel(data, 0, method, sign, (fig, ax))
            ax.set_title(_panel_title(method, sign), fontsize=8)
    fig.suptitle(f"Attributions of the paper's car image (seed {seed}; |·|: absolute, "
                 "channels summed)", fontsize=9)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "The further test images the explain stage attributes ({attribution[images_per_class]} per "
    "class, the first of each class in the official order), every model: the image, then per "
    "model the four methods as absolute maps (Captum's blended heat maps); the title gives "
    "p(true class).", "Fig. 7 (vdk.fig7, more images)", ("attributions",),
    when=lambda study: study["attribution"]["images_per_class"] > 0, per_seed=True,
    absent="No further test images were attributed (studies.vdk.attribution.images_per_class "
    "is 0 in this configuration): the paper's car image only, in vdk_attributions.",
    checks=ATTRIBUTION_CHECKS)
def vdk_attribution_gallery(files: StudyFiles) -> plt.Figure:
    models, seed = files.models, files.seeds[0]
    data = {m: read_npz(files.run("attributions", m, seed)) for m in models}
    first = data[models[0]]
    shown = range(1, len(first["labels"]))  # index 0 is the car, drawn in vdk_attributions
    classes = first["classes"]
    methods = tuple(SHORT)  # the paper's four, in its order
    fig, axes = plt.subplots(len(shown), 1 + len(models) * len(methods),
                             figsize=(0.95 * (1 + len(models) * len(methods)),
                                      1.05 * len(shown) + 0.6), squeeze=False)
    for row, i in zip(axes, shown):
        image_panel(first["images"][i], f"{classes[first['labels'][i]]} (#{first['indices'][i]})",
                    (fig, row[0]), fontsize=6)
        for k, model in enumerate(models):
            d = data[model]
            for j, method in enumerate(methods):
                ax = row[1 + k * len(methods) + j]
                _attribution_panel(d, i, method, "absolute_value", (fig, ax))
                title = f"{model}\n{SHORT[method]}" if i == shown[0] else SHORT[method]
                if j == 0:
                    title += f" p={d['probs'][i, d['labels'][i]]:.2f}"
                ax.set_title(title, fontsize=5)
    fig.suptitle(f"Attributions of {len(shown)} further test images, every model (seed {seed})",
                 fontsize=9)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Deletion and insertion AUC of each attribution method: pixels removed (set to the mean) "
    "or inserted in attribution order, class probability integrated; beyond the paper, which "
    "judged the maps by eye.", "beyond the paper (quantifies Fig. 7)",
    ("faithfulness_summary",), checks=ATTRIBUTION_CHECKS)
def vdk_faithfulness(files: StudyFiles) -> plt.Figure:
    models, seeds = files.models, files.seeds
    table = read_csv(files.file("faithfulness_summary"))
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(models)
    for ax, kind, better in zip(axes, ("deletion", "insertion"), ("lower", "higher")):
        for i, model in enumerate(models):
            rows = table[table["model"] == model].set_index("method").reindex(methods)
            ax.bar(np.arange(len(methods)) + i * width, rows[f"{kind}_auc_mean"], width,
                   yerr=rows[f"{kind}_auc_std"].fillna(0), label=model, capsize=2)
        ax.set_xticks(np.arange(len(methods)) + width * (len(models) - 1) / 2,
                      [m.replace("_", " ") for m in methods], rotation=20, fontsize=8)
        ax.set(ylabel=f"{kind} AUC (class probability)",
               title=f"{kind.capitalize()} AUC ({better} = more faithful)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Attribution faithfulness, mean ± std over {len(seeds)} seed(s); "
                 "'random' is a random pixel order")
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Clean protocol: torchattacks FGSM with normalisation inside the model, accuracy against "
    "the true labels over an epsilon sweep, mean ± std over seeds.",
    "Fig. 8 (vdk.fig8), robustness claim", ("fgsm_curve", ("fgsm", FIRST)),
    checks=ATTACK_CHECKS)
def vdk_fgsm_epsilon(files: StudyFiles) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    paper_eps = read_json(files.run("fgsm", files.models[0], files.seeds[0]))["paper"]["epsilon"]
    for model, runs in files.by_model("fgsm_curve").items():
        curve = pd.concat([read_csv(f) for f in runs]).groupby("epsilon")["accuracy"]
        mean, std = 100 * curve.mean(), 100 * curve.std().fillna(0)
        ax.errorbar(mean.index, mean, yerr=std, marker="o", ms=3, capsize=2, label=model)
    marks = ((2 / 255, "2/255"), (8 / 255, "8/255"), (paper_eps, f"{paper_eps:g} (paper)"))
    for eps, name in marks:
        ax.axvline(eps, color="grey", ls=":", lw=0.8)
        ax.text(eps, 97, name, rotation=90, fontsize=7, va="top", ha="right")
    # symlog: the curve falls within a few /255 and the sweep reaches 0.3
    ax.set_xscale("symlog", linthresh=1 / 255, linscale=0.5)
    ax.set_xlim(left=0)
    ax.set(xlabel="FGSM epsilon (pixel scale [0, 1], symlog)", ylabel="test accuracy (%)",
           ylim=(0, 100))
    ax.legend(fontsize=8)
    ax.set_title("Clean protocol: accuracy against true labels vs epsilon")
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Is the attack an attack (Carlini et al. 2019): test accuracy against the true labels under "
    "FGSM, PGD ({attack_checks[pgd_steps]} steps of {attack_checks[pgd_alpha]:g} eps, random "
    "start) and random-sign noise of the same L-infinity size, on the same "
    "{attack_checks[images]} class-balanced test images per run, mean ± std over seeds. Every "
    "adversarial image was checked to lie within eps of its source and inside [0, 1]. Accuracy "
    "should fall with eps, PGD should lie on or below FGSM and noise far above it: the claims "
    "vdk.sanity.* judge each.", "ours (attack sanity checks)", ("attack_checks",),
    checks=ATTACK_CHECKS)
def vdk_attack_checks(files: StudyFiles) -> plt.Figure:
    return attack_check_curves({model: pd.concat([read_csv(f) for f in paths])
                                for model, paths in files.by_model("attack_checks").items()},
                               "accuracy", "test accuracy (%)")


@FIGURES.register(
    "Confusion after FGSM at eps {fgsm[paper_epsilon]:g} under both protocols. The paper "
    "protocol attacks the un-normalised input with the original's bounds and scores only "
    "images that were correct before the attack. Its two quirks, named here where their effect "
    "is shown: the perturbed image in [0, 1] goes into a model trained on [-1, 1] inputs "
    "without re-normalising, and the loss is Captum's default -log(output[target]) taken on "
    "raw logits, not on probabilities. The clean protocol has neither.", "Fig. 8 (vdk.fig8)",
    ("fgsm",),
    checks=ATTACK_CHECKS)
def vdk_fgsm_confusion(files: StudyFiles) -> plt.Figure:
    models = files.models
    fig, axes = plt.subplots(len(models), 2, figsize=(9.5, 4.2 * len(models)), squeeze=False)
    for row, (model, paths) in zip(axes, files.by_model("fgsm").items()):
        runs = [read_json(f) for f in paths]
        classes = runs[0]["classes"]
        paper = np.mean([r["paper"]["confusion"] for r in runs], axis=0)
        eps = runs[0]["paper"]["epsilon"]
        key = min(runs[0]["clean"]["confusion"], key=lambda k: abs(float(k) - eps))
        clean = np.mean([r["clean"]["confusion"][key] for r in runs], axis=0)
        confusion_panel(paper, classes, f"{model}: paper (score "
                        f"{np.mean([r['paper']['score'] for r in runs]):.3f})", (fig, row[0]))
        confusion_panel(clean, classes, f"{model}: clean (eps {float(key):.3g})", (fig, row[1]))
    fig.suptitle(f"Confusion after FGSM at eps {eps:g}. Paper: correctly classified images "
                 "only, clean vs adversarial prediction; clean: true label vs adversarial "
                 "prediction", fontsize=9)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Smallest Gaussian blur that flips the prediction. Paper protocol: kernel sizes "
    "{blur[paper][arg_min]}…{blur[paper][arg_max]} (excluded), {blur[paper][attempts]} random "
    "sigmas each, on the normalised tensor, every attacked image (kernel 1 = already wrong). "
    "Clean protocol: a fixed sigma grid in pixel space, correctly classified images only.",
    "Fig. 9 (vdk.fig9)", ("blur",), checks=("vdk.sanity.blur_monotone.",))
def vdk_blur_histograms(files: StudyFiles) -> plt.Figure:
    models, seeds = files.models, files.seeds
    fig, axes = plt.subplots(2, len(models), figsize=(3.4 * len(models), 6.2), squeeze=False)
    for col, (model, paths) in enumerate(files.by_model("blur").items()):
        data = [read_npz(f) for f in paths]
        kernel = np.concatenate([d["paper_kernel"] for d in data])
        sizes = data[0]["kernel_sizes"]
        immune_at = sizes.max() + 4  # the original plots "immune" at 33
        kernel = np.where(kernel == IMMUNE, immune_at, kernel)
        axes[0, col].hist(kernel, bins=np.arange(0, immune_at + 3, 2), color="C0")
        axes[0, col].set(title=f"{model}: paper", xlabel=f"kernel size ({immune_at} = immune)",
                         ylabel="images")
        sigma = np.concatenate([d["clean_sigma"][d["correct"]] for d in data])
        grid = data[0]["sigma_grid"]
        step = grid[1] - grid[0] if len(grid) > 1 else 1.0
        sigma = np.where(np.isnan(sigma), grid.max() + step, sigma)
        axes[1, col].hist(sigma, bins=np.append(grid, grid.max() + step) - step / 2
                          if len(grid) > 1 else 3, color="C1")
        axes[1, col].set(title=f"{model}: clean", ylabel="images",
                         xlabel=f"sigma (px; {grid.max() + step:.3g} = immune)")
    fig.suptitle(f"Smallest blur that changes the prediction, pooled over {len(seeds)} seed(s)")
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Is the blur an attack that grows with its strength: the share of correctly classified "
    "test images whose prediction the clean protocol's pixel-space blur flips, every image "
    "blurred at every sigma of the grid (not only until its first flip, whose count rises by "
    "construction), mean ± std over seeds. The paper protocol draws a new sigma at every "
    "call, so its kernel size orders nothing and it has no such curve.",
    "ours (blur sanity check)", ("blur_summary",), checks=("vdk.sanity.blur_monotone.",))
def vdk_blur_damage(files: StudyFiles) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for model, paths in files.by_model("blur_summary").items():
        runs = [read_json(f)["clean"] for f in paths]
        damage = 100 * np.array([r["damage"] for r in runs])
        std = damage.std(0, ddof=1) if len(runs) > 1 else np.zeros(damage.shape[1])
        ax.errorbar(runs[0]["sigma_grid"], damage.mean(0), yerr=std, marker="o", ms=3,
                    capsize=2, label=model)
    ax.set(xlabel="blur sigma (px)", ylabel="correct images flipped (%)", ylim=(0, 100),
           title="Clean protocol: blur damage against sigma")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Share of blur-immune images per model and protocol; dashed lines are the paper's "
    "Table 1 values, over the paper-protocol bars only (the clean protocol asks another "
    "question: it is compared between models, not with Table 1).", "Table 1 (vdk.tab1)",
    ("blur_summary", "claims"), checks=("vdk.sanity.blur_monotone.",))
def vdk_immune(files: StudyFiles) -> plt.Figure:
    models = files.models
    claims = read_csv(files.file("claims")).set_index("claim_id")
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for j, proto in enumerate(("paper", "clean")):
        values = [[100 * read_json(f)[proto]["immune"] for f in paths]
                  for paths in files.by_model("blur_summary").values()]
        ax.bar(np.arange(len(models)) + j * width, [np.mean(v) for v in values], width,
               yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values], capsize=3,
               label=f"{proto} protocol")
    for i, model in enumerate(models):
        cid = f"vdk.tab1.{model}.paper"
        if cid in claims.index:
            # paper_value is a text column (some claims are qualitative): as text, matplotlib
            # would draw the line on a categorical axis at the bottom of the plot
            paper = float(claims.loc[cid, "paper_value"])
            ax.plot([i - width / 2, i + width / 2], [paper] * 2,
                    "k--", lw=1.2, label="paper" if i == 0 else None)
    ax.set_xticks(np.arange(len(models)) + width / 2, models)
    ax.set(ylabel="immune images (%)", title="Blur-immune test images (Table 1), mean ± std")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@FIGURES.register(
    "Model randomisation (Adebayo et al. 2018; beyond the paper): the layers re-initialised "
    "from the output down, one more at a time (x axis: the last layer re-initialised), and "
    "each method's maps of {randomisation[images]} class-balanced test images compared with "
    "the trained model's: Spearman rank correlation of the absolute maps (left) and SSIM "
    "(right), mean and standard deviation over images and seeds, one row per model. Maps "
    "that depend on the learned weights fall towards 0; the claims vdk.sanity.randomisation.* "
    "hold where the mean correlation with every layer re-initialised is below "
    "{claims[randomisation_similarity]} on every seed.",
    "beyond the paper (Fig. 7's methods)", ("randomisation",),
    checks=("vdk.sanity.randomisation.",))
def vdk_randomisation(files: StudyFiles) -> plt.Figure:
    return randomisation_curves(files, SHORT)


@FIGURES.register(
    "The cascade of model randomisation for one test image (Adebayo et al. 2018, their "
    "Fig. 2 layout): per model and method, the absolute map (channels summed, each scaled to "
    "its maximum) of the trained model, then with the layers re-initialised from the output "
    "down up to the one named above the column.",
    "beyond the paper (Fig. 7's methods)", ("randomisation_maps",), per_seed=True,
    checks=("vdk.sanity.randomisation.",))
def vdk_randomisation_strip(files: StudyFiles) -> plt.Figure:
    return randomisation_strip(files, SHORT)
