"""Bad config overlays, each with the config key (or file and line) its rejection must name.

Every overlay goes on top of ``config.yaml`` and the quick preset, as a user's would.
``test_config`` loads each through :func:`cnnrepro.config.load` (and the data-source checks);
the end-to-end test hands each to ``snakemake -n`` (YAML-level ones to ``./repro run``)
and checks that the run stops before any job, writing nothing.
"""

from __future__ import annotations

import pytest

# (id, overlay text, what the message must contain); "{file}" is the overlay's path.
YAML_LEVEL = [
    ("yaml_unclosed_flow", "studies:\n  mnist:\n    training: {epochs: 2\n", "{file}, line 4"),
    ("yaml_tab_indent", "studies:\n\tmnist: {}\n", "{file}, line 2"),
    ("yaml_bad_indent", "seeds: [0]\n  device: cpu\n", "{file}, line 2"),
    ("yaml_duplicate_key", "seeds: [0]\ndevice: cpu\nseeds: [1]\n", "{file}, line 3"),
    ("overlay_is_a_list", "- seeds\n- device\n", "{file}: the top level must be a mapping"),
    ("overlay_is_a_scalar", "quick\n", "{file}: the top level must be a mapping"),
]

SCHEMA_AND_SEMANTICS = [
    # top level
    ("unknown_top_key", "seedz: [1]\n", "seedz"),
    ("seeds_not_a_list", "seeds: 0\n", "config key seeds"),
    ("seeds_empty", "seeds: []\n", "config key seeds"),
    ("seed_negative", "seeds: [-1]\n", "config key seeds.0"),
    ("seeds_repeated", "seeds: [0, 0]\n", "config key seeds"),
    ("device_unknown", "device: gpu\n", "config key device"),
    ("deterministic_string", "deterministic: 'yes'\n", "config key deterministic"),
    ("preset_not_a_string", "preset: 3\n", "config key preset"),
    ("deviations_not_a_list", "deviations: fewer epochs\n", "config key deviations"),
    ("precision_unknown", "runtime: {precision: bf16}\n", "config key runtime.precision"),
    ("checkpoint_negative", "runtime: {checkpoint_seconds: -1}\n",
     "config key runtime.checkpoint_seconds"),
    ("nt_batch_zero", "runtime: {attribution_batch: {cuda: {nt_samples_batch_size: 0, "
     "internal_batch_size: null}}}\n", "config key runtime.attribution_batch.cuda"),
    # data
    ("mirror_not_a_path", "data: {mirror: 5}\n", "config key data.mirror"),
    ("dataset_extra_unknown", "data: {datasets: [imagenet]}\n", "config key data.datasets.0"),
    ("caltech_split_sum", "data: {caltech: {split: {train: 0.9}}}\n", "config key data.caltech.split"),
    ("caltech_class_dragon", "data: {caltech: {classes: [butterfly, dragon]}}\n",
     "config key data.caltech.classes"),
    ("caltech_class_twice", "data: {caltech: {classes: [butterfly, butterfly]}}\n",
     "config key data.caltech.classes"),
    ("caltech_one_class", "data: {caltech: {classes: [butterfly]}}\n",
     "config key data.caltech.classes"),
    ("caltech_image_tiny", "data: {caltech: {image_size: 4}}\n", "config key data.caltech.image_size"),
    # evaluation, estimate, resources
    ("eval_batch_zero", "evaluation: {batch_size: 0}\n", "config key evaluation.batch_size"),
    ("latency_batch_zero", "evaluation: {latency: {batch_sizes: [0]}}\n",
     "config key evaluation.latency.batch_sizes.0"),
    ("estimate_zero_gflops", "estimate: {cpu_gflops: 0}\n", "config key estimate.cpu_gflops"),
    ("threads_zero", "resources: {train: {threads: 0}}\n", "config key resources.train.threads"),
    ("resources_unknown_rule", "resources: {gpu_train: {threads: 1}}\n", "gpu_train"),
    # study blocks
    ("study_unknown", "studies: {resnet: {dataset: cifar10}}\n", "resnet"),
    ("study_enabled_string", "studies: {mnist: {enabled: 'no'}}\n", "config key studies.mnist.enabled"),
    ("study_dataset_unknown", "studies: {mnist: {dataset: imagenet}}\n",
     "config key studies.mnist.dataset"),
    ("study_key_typo", "studies: {vdk: {trainig: {}}}\n", "trainig"),
    ("optimizer_unknown", "studies: {mnist: {training: {optimizer: rmsprop}}}\n",
     "config key studies.mnist.training.optimizer"),
    ("lr_zero", "studies: {mnist: {training: {lr: 0}}}\n", "config key studies.mnist.training.lr"),
    ("lr_string", "studies: {mnist: {training: {lr: fast}}}\n",
     "config key studies.mnist.training.lr"),
    ("batch_zero", "studies: {mnist: {training: {batch_size: 0}}}\n",
     "config key studies.mnist.training.batch_size"),
    ("epochs_negative", "studies: {mnist: {training: {epochs: -1}}}\n",
     "config key studies.mnist.training.epochs"),
    ("holdout_too_large", "studies: {mnist: {holdout_fraction: 0.95}}\n",
     "config key studies.mnist.holdout_fraction"),
    ("subset_zero", "studies: {mnist: {subset: {train: 0}}}\n",
     "config key studies.mnist.subset.train"),
    ("subset_beyond_mnist_train", "studies: {mnist: {subset: {train: 100000}}}\n",
     "config key studies.mnist.subset.train"),
    ("subset_beyond_cifar_test", "studies: {vdk: {subset: {test: 20000}}}\n",
     "config key studies.vdk.subset.test"),
    ("normalize_rgb_on_mnist", "studies: {mnist: {normalize: {mean: [0.5, 0.5, 0.5], "
     "std: [0.5, 0.5, 0.5]}}}\n", "config key studies.mnist.normalize.mean"),
    ("normalize_grey_on_cifar", "studies: {vdk: {normalize: {mean: [0.5], std: [0.5]}}}\n",
     "config key studies.vdk.normalize.mean"),
    ("normalize_std_short", "studies: {vdk: {normalize: {mean: [0.5, 0.5, 0.5], "
     "std: [0.5, 0.5]}}}\n", "config key studies.vdk.normalize.std"),
    ("normalize_std_zero", "studies: {mnist: {normalize: {mean: [0.0], std: [0]}}}\n",
     "config key studies.mnist.normalize.std.0"),
    ("snapshot_beyond_epochs", "studies: {lenet: {training: {snapshot_epochs: [0, 5]}}}\n",
     "config key studies.lenet.training.snapshot_epochs"),
    ("snapshot_repeated", "studies: {lenet: {training: {snapshot_epochs: [1, 1]}}}\n",
     "config key studies.lenet.training.snapshot_epochs"),
    ("snapshot_beyond_model_epochs", "studies: {lenet: {models: {cnn: {training: {epochs: 1}}}}}\n",
     "config key studies.lenet.training.snapshot_epochs"),
    # model names (they become folders and report labels)
    ("name_with_slash", "studies: {mnist: {models: {'mnist/a': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: 'mnist/a' is not allowed"),
    ("name_dotdot", "studies: {mnist: {models: {'..': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: '..' is not allowed"),
    ("name_dot", "studies: {mnist: {models: {'.': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: '.' is not allowed"),
    ("name_space", "studies: {mnist: {models: {'my model': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: 'my model' is not allowed"),
    ("name_empty", "studies: {mnist: {models: {'': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: '' is not allowed"),
    ("name_shell", "studies: {mnist: {models: {'a;rm -rf ~': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: 'a;rm -rf ~' is not allowed"),
    ("name_subshell", "studies: {mnist: {models: {'$(touch x)': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: '$(touch x)' is not allowed"),
    ("name_html", "studies: {mnist: {models: {'<b>x</b>': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: '<b>x</b>' is not allowed"),
    ("name_leading_dash", "studies: {mnist: {models: {'-rf': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: '-rf' is not allowed"),
    ("name_not_ascii", "studies: {mnist: {models: {'modèle': {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: 'modèle' is not allowed"),
    ("name_too_long", "studies: {mnist: {models: {" + "m" * 70 + ": {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models: '" + "m" * 70 + "' is not allowed"),
    ("name_case_twin", "studies: {mnist: {models: {CNN: {arch: mnist_cnn}}}}\n",
     "config key studies.mnist.models.CNN"),
    # architectures and their options
    ("arch_unknown", "studies: {mnist: {models: {cnn: {arch: resnet50}}}}\n",
     "config key studies.mnist.models.cnn.arch"),
    ("arch_missing", "studies: {mnist: {models: {extra: {options: {}}}}}\n",
     "config key studies.mnist.models.extra"),
    ("option_unknown", "studies: {vdk: {models: {vdk_cnnet: {options: {widht: 32}}}}}\n", "widht"),
    ("options_not_a_mapping", "studies: {mnist: {models: {cnn: {options: [1, 2]}}}}\n",
     "config key studies.mnist.models.cnn.options"),
    ("channels_words", "studies: {mnist: {models: {cnn: {options: {channels: thirty-two}}}}}\n",
     "config key studies.mnist.models.cnn.options.channels"),
    ("channels_negative", "studies: {mnist: {models: {cnn: {options: {channels: [-3, 32]}}}}}\n",
     "config key studies.mnist.models.cnn.options.channels"),
    ("kernel_float", "studies: {mnist: {models: {cnn: {options: {kernel: 3.5}}}}}\n",
     "config key studies.mnist.models.cnn.options.kernel"),
    ("kernel_zero", "studies: {mnist: {models: {cnn: {options: {kernel: 0}}}}}\n",
     "config key studies.mnist.models.cnn.options.kernel"),
    ("batch_norm_string", "studies: {mnist: {models: {cnn: {options: {batch_norm: 'yes'}}}}}\n",
     "config key studies.mnist.models.cnn.options.batch_norm"),
    ("hidden_not_a_list", "studies: {mnist: {models: {cnn: {options: {hidden: 500}}}}}\n",
     "config key studies.mnist.models.cnn.options.hidden"),
    ("vdk_pool_unknown", "studies: {vdk: {models: {vdk_cnnet: {options: {vdk_pool: median}}}}}\n",
     "config key studies.vdk.models.vdk_cnnet.options.vdk_pool"),
    ("dilations_one", "studies: {vdk: {models: {vdk_dilated: {options: {branch_dilations: [2]}}}}}\n",
     "config key studies.vdk.models.vdk_dilated.options"),
    ("kernel_too_large_for_images",
     "studies: {vdk: {models: {baseline_cnn: {options: {kernel: 15}}}}}\n",
     "config key studies.vdk.models.baseline_cnn.options"),
    ("vgg_fallback_unknown", "studies: {caltech: {models: {vgg19: {options: {fallback: pray}}}}}\n",
     "config key studies.caltech.models.vgg19.options.fallback"),
    ("vgg_weights_unknown",
     "studies: {caltech: {models: {vgg19: {options: {weights: IMAGENET1K_V9}}}}}\n",
     "config key studies.caltech.models.vgg19.options.weights"),
    ("vgg_on_grey_digits", "studies: {mnist: {models: {vgg: {arch: vgg19_transfer}}}}\n",
     "config key studies.mnist.models.vgg.options"),
    # the studies' own rules
    ("probe_class_unicorn", "studies: {lenet: {probe: {image_class: unicorn}}}\n",
     "config key studies.lenet.probe.image_class"),
    ("probe_kernel_999", "studies: {lenet: {probe: {kernel: 999}}}\n",
     "config key studies.lenet.probe.kernel"),
    ("probe_kernel_one_past", "studies: {lenet: {probe: {kernel: 32}}}\n",
     "config key studies.lenet.probe.kernel"),
    ("probe_without_snapshots", "studies: {lenet: {training: {snapshot_epochs: []}}}\n",
     "config key studies.lenet.training.snapshot_epochs"),
    ("grid_subset_beyond_train", "studies: {lenet: {grid: {train_subset: 60000}}}\n",
     "config key studies.lenet.grid.train_subset"),
    ("grid_selection_unknown", "studies: {lenet: {grid: {selection: best}}}\n",
     "config key studies.lenet.grid.selection"),
    ("grid_no_points", "studies: {lenet: {grid: {lr: {num: 0}}}}\n",
     "config key studies.lenet.grid.lr.num"),
    ("robust_epsilon_not_swept", "studies: {vdk: {claims: {robust_epsilon: 0.5}}}\n",
     "config key studies.vdk.claims.robust_epsilon"),
    ("blur_sigma_range_inverted", "studies: {vdk: {blur: {clean: {sigma_min: 5.0}}}}\n",
     "config key studies.vdk.blur.clean.sigma_min"),
    ("blur_kernel_range_empty", "studies: {vdk: {blur: {paper: {arg_min: 31}}}}\n",
     "config key studies.vdk.blur.paper.arg_min"),
    ("fgsm_images_beyond_test", "studies: {vdk: {fgsm: {images: 1000}}}\n",
     "config key studies.vdk.fgsm.images"),
    ("fgsm_epsilon_negative", "studies: {vdk: {fgsm: {epsilons: [-0.1]}}}\n",
     "config key studies.vdk.fgsm.epsilons.0"),
    ("occlusion_patch_beyond_image", "studies: {mnist: {lab: {occlusion: {patch: 40}}}}\n",
     "config key studies.mnist.lab.occlusion.patch"),
    ("noise_images_beyond_test", "studies: {mnist: {lab: {noise: {images: 1000}}}}\n",
     "config key studies.mnist.lab.noise.images"),
    ("targeted_sources_eleven", "studies: {mnist: {lab: {targeted: {sources: 11}}}}\n",
     "config key studies.mnist.lab.targeted.sources"),
]

# Rejected only once the data source is known (the staged mirror): at start-up, not by
# cfg.load alone.
SOURCE_LEVEL = [
    ("caltech_class_not_in_mirror", "data: {caltech: {classes: [butterfly, airplanes]}}\n",
     "config key data.caltech.classes"),
    ("caltech_subset_beyond_split", "studies: {caltech: {subset: {train: 500}}}\n",
     "config key studies.caltech.subset.train"),
]

ALL = YAML_LEVEL + SCHEMA_AND_SEMANTICS + SOURCE_LEVEL


def params(table):
    return [pytest.param(text, expect, id=name) for name, text, expect in table]
