# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Training one variant
#
# This notebook trains and tests one model of the report's Table 1 with the report's recipe, scaled by the
# preset. Run it from the repository root with papermill; every parameter below can be set with `-p`:
#
# ```bash
# papermill book/03_train.ipynb out.ipynb -p backbone res152                  # EgoACO ResNet-152, demo preset
# papermill book/03_train.ipynb out.ipynb -p backbone res152 -p preset smoke  # the whole pipeline in minutes
# papermill book/03_train.ipynb out.ipynb -p method gsm -p backbone bninc -p preset paper \
#     -p data_root /data/EPIC_KITCHENS_2018                                    # the report's GSM recipe
# papermill book/03_train.ipynb out.ipynb -p method gsm -p backbone bninc -p preset paper \
#     -p dataset epic100 -p data_root /data/EPIC-KITCHENS                      # the same on EPIC-KITCHENS-100
# ```
#
# Without `data_root` the run uses the embedded SynthKitchens set of the preset (generated first when it is
# missing). The run folder `runs/<name>/` receives `config.json`, `checkpoint.pt` (after every epoch: an
# interrupted run resumes from it), `log.csv`, `scores_s1.npz`, `scores_s2.npz` (EPIC-100:
# `scores_validation.npz`, `scores_test.npz`), `first_clip_<split>.npz` of the labelled splits (the first test
# clip's logits and, for EgoACO on SynthKitchens, attention maps: chapters 4 and 5 read them), `metrics.json`,
# `submission.zip` (the dataset's challenge format) and, last, `DONE`. Several GPUs:
# `torchrun --nproc_per_node=N -m egolib.train --config runs/<name>/config.json`.

# %%
# %matplotlib inline
# ruff: noqa: UP045  (papermill's parameter grammar reads `Optional[int]` but not `int | None`)
import logging
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from egolib import convergence, train
from egolib import pretrain as pretraining
from egolib.config import RunConfig

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
sns.set_theme(style="whitegrid")

# %% tags=["parameters"]
method: str = "egoaco"  # tsn | gsm | egoaco | gsm_egoaco
backbone: str = "res34"  # bninc | incv3 | res34 | res101 | res152 | r2p1d34
pretrain: Optional[str] = None  # imagenet | epic | ig65m_kinetics | scratch (None: the report's choice)
preset: str = "demo"  # smoke | demo | paper
dataset: str = "epic55"  # epic55 (the report's, test S1/S2) | epic100 (train, validation, test)
data_root: Optional[str] = None  # EPIC-Kitchens root of the dataset; None: the embedded SynthKitchens set
seed: int = 0  # the SynthKitchens draw (data/synthkitchens-<preset>-s<seed>), data order, augmentation, init
num_segments: Optional[int] = None  # TSN segments (frames, or 3-frame snippets for r2p1d34) per clip
input_size: Optional[int] = None  # training crop side in pixels
width: Optional[float] = None  # channel-width multiplier of the backbone (1.0: the standard network)
epochs: Optional[int] = None  # epochs (GSM/TSN), or epochs of EgoACO stage 1
epochs_stage2: Optional[int] = None  # EgoACO stage 2 epochs (+ cloned top layers)
epochs_stage3: Optional[int] = None  # EgoACO stage 3 epochs (+ conv4_x / last Inception layers)
warmup_epochs: Optional[int] = None  # linear warm-up epochs before the cosine schedule
lr: Optional[float] = None  # initial learning rate (GSM/TSN, EgoACO stage 1)
lr_stage2: Optional[float] = None  # EgoACO stage 2 learning rate
lr_stage3: Optional[float] = None  # EgoACO stage 3 learning rate
optimizer: Optional[str] = None  # sgd (the report's) | adam (LSTA's released code, eps 1e-4; EgoACO at demo)
weight_decay: float = 0.0005  # weight decay (L2, on every trained parameter)
momentum: float = 0.9  # SGD momentum
batch_size: Optional[int] = None  # clips per optimiser step (per process under DDP)
dropout: float = 0.5  # dropout before the classifiers
clip_grad: float = 20.0  # global L2 norm for gradient clipping (0 disables)
test_clips: int = 2  # clips per test segment, predictions averaged
test_crop: Optional[str] = None  # full (fully-convolutional, GSM) | centre (EgoACO)
egoaco_clone: str = "top_stage"  # EgoACO: clone the top conv stage three times, or only the fc dictionary
lsta_memory: Optional[int] = None  # LSTA memory channels (paper: 512)
lsta_pool: Optional[int] = None  # LSTA output-pooling classes (paper: 300)
stage1_feature_views: Optional[int] = None  # EgoACO stage 1: augmented views per clip cached as backbone maps (0: off)
stage2_trunk_views: Optional[int] = None  # EgoACO stage 2: augmented views per clip cached as trunk maps (0: off)
val_curve: bool = False  # score the validation split after every epoch (data_root: a carved validation set)
device: str = "auto"  # auto | cpu | cuda
channels_last: str = "auto"  # auto (on CUDA only) | on | off: channels-last convolution weights
num_workers: Optional[int] = None  # DataLoader workers (0 on CPU: the cores train)
run_dir: Optional[str] = None  # run folder; None: runs/<name> (recipe, data, non-default values: config.run_name)

# %% [markdown]
# ## The configuration
#
# `RunConfig.from_params` validates every parameter (a misspelt name, a wrong type or an invalid choice stops
# the notebook here, naming the parameter and the valid choices) and fills what is left at `None` from the
# preset. The recipe below is the report's, with the preset's epochs.

# %%
cfg = RunConfig.from_params(train.notebook_params(globals()))
display(pd.Series(cfg.to_dict(), name="value").to_frame())
display(pd.DataFrame([vars(s) for s in train.recipe(cfg)]).set_index("index"))

# %% [markdown]
# ## Train and test
#
# `train.run` pretrains the backbone first when this run needs a stand-in that is not cached yet, trains
# (resuming from `checkpoint.pt` when the folder holds an interrupted run) and tests on S1 and S2 (EPIC-100: on
# validation and test). A run whose folder is complete and current is not trained again.

# %%
result = train.run(cfg)
pre = pretraining.resolve(cfg)
display(Markdown(f"**Pretraining used:** {pre.describe()}."))

# %% [markdown]
# ## Learning curves
#
# One point per epoch: training loss (sum of the verb, noun and action cross-entropies) and training accuracy
# on the augmented clips. EgoACO stages are separated by dashed lines; the report trains on the full training
# set without validation, and so does this notebook. A circle marks where each training accuracy stops improving
# (its 3-epoch mean within one point of its best; the last epoch when it was still improving at the end).

# %%
history = train.read_log(cfg.run_path)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sns.lineplot(data=history, x="global_epoch", y="loss", marker="o", ax=axes[0])
accuracy = history.melt(id_vars="global_epoch", value_vars=["acc_verb", "acc_noun", "acc_action"],
                        var_name="task", value_name="accuracy")
sns.lineplot(data=accuracy, x="global_epoch", y="accuracy", hue="task", marker="o", ax=axes[1])
plateaus = {}
for task, colour in zip(convergence.TASKS, sns.color_palette(n_colors=3), strict=True):
    stop = convergence.plateau_epoch(history[f"acc_{task}"])
    plateaus[task] = stop
    axes[1].plot(history["global_epoch"].iloc[stop - 1], history[f"acc_{task}"].iloc[stop - 1], "o", color=colour,
                 markersize=11, markerfacecolor="none")
for boundary in history.groupby("stage")["global_epoch"].max().iloc[:-1]:
    for ax in axes:
        ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
for ax in axes:
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
axes[0].set(title="training loss", xlabel="epoch", ylabel="verb + noun + action cross-entropy (nats)")
axes[1].set(title="training accuracy", xlabel="epoch", ylabel="accuracy (fraction of clips)", ylim=(0, 1))
fig.tight_layout()
plt.show()
display(pd.DataFrame({"last epoch (%)": [100 * history[f"acc_{t}"].iloc[-1] for t in convergence.TASKS],
                      "stops improving at epoch": list(plateaus.values()), "epochs": len(history)},
                     index=[f"training {t}" for t in convergence.TASKS]).round(1))

# %% [markdown]
# ## Convergence on the validation split
#
# Training accuracy alone cannot say whether a recipe has learned what the data holds. Each demo recipe was
# chosen on a convergence study: the same parameters trained on the training videos minus the last video of every
# kitchen, and scored on those held-out videos after every epoch (`python -m egolib.convergence --method ...
# --backbone ...`, recorded in `convergence/`). Solid lines are validation top-1, dashed lines training accuracy
# on the augmented clips; a dot marks where the validation curve stops improving (its 3-epoch mean within one
# point of its best). S1 and S2 played no part in it.

# %%
curves = convergence.read_curves(cfg)
if curves is None:
    display(Markdown(f"No convergence study is recorded for this recipe: `python -m egolib.convergence --method "
                     f"{cfg.method} --backbone {cfg.backbone} --preset {cfg.preset}` records one "
                     f"(`{convergence.curve_path(cfg).name}`)."))
else:
    fig, ax = plt.subplots(figsize=(8, 4))
    for task, colour in zip(convergence.TASKS, sns.color_palette(n_colors=3), strict=True):
        ax.plot(curves["global_epoch"], curves[f"val_{task}"], color=colour, marker="o", markersize=3,
                label=f"{task}: validation")
        ax.plot(curves["global_epoch"], curves[f"acc_{task}"], color=colour, linestyle="--", label=f"{task}: training")
        stop = convergence.plateau_epoch(curves[f"val_{task}"])
        ax.plot(curves["global_epoch"].iloc[stop - 1], curves[f"val_{task}"].iloc[stop - 1], "o", color=colour,
                markersize=10, markerfacecolor="none")
    for boundary in curves.groupby("stage")["global_epoch"].max().iloc[:-1]:
        ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
    ax.set(title=f"{cfg.name}: convergence study", xlabel="epoch", ylabel="top-1 (fraction)", ylim=(0, 1))
    ax.legend(ncol=3, fontsize=8, loc="upper left")
    fig.tight_layout()
    plt.show()
    display(convergence.summary(curves).round(1))

# %% [markdown]
# ## Test metrics (%)
#
# EPIC-Kitchens-55 metrics per test split: S1 = seen kitchens, S2 = unseen kitchens; top-1/top-5 accuracy
# over all segments, precision and recall averaged over the many-shot classes. Actions are ranked by the
# action head. EPIC-100 (`dataset=epic100`): its metrics on the validation split, top-1/top-5 accuracy over all
# segments and top-1 on the tail classes and on the participants unseen in training; actions are ranked by the
# verb x noun product, as the official evaluation does.

# %%
display(train.summary(result).round(2))
display(Markdown(f"Test protocol: {result['protocol']}. {pre.describe()}."))

# %% [markdown]
# ## Verb confusion on the first test split
#
# Rows are true verbs, columns predicted verbs, each row normalised to sum to 1. SynthKitchens' verbs come in
# time-reversal pairs (take/put, open/close, ...): an order-blind model confuses the two verbs of a pair.

# %%
data = train.load_data(cfg)
split = data.test_splits[0]  # s1 (EPIC-55) or validation (EPIC-100)
segments, labelled = data.test_segments(split)
if labelled:
    verbs = data.class_names("verb")
    predicted = np.load(cfg.run_path / f"scores_{split}.npz")["verb"].argmax(1)
    confusion = pd.crosstab(pd.Series(segments["verb_class"].to_numpy(), name="true"),
                            pd.Series(predicted, name="predicted"), normalize="index")
    confusion = confusion.reindex(index=range(len(verbs)), columns=range(len(verbs)), fill_value=0.0)
    fig, ax = plt.subplots(figsize=(7, 6))
    sns.heatmap(confusion, cmap="Blues", vmin=0, vmax=1, square=True, ax=ax, xticklabels=verbs, yticklabels=verbs,
                cbar_kws={"label": f"fraction of the true verb's {split} segments"})
    ax.set(title=f"{cfg.name}: verb confusion ({split})", xlabel="predicted verb", ylabel="true verb")
    fig.tight_layout()
    plt.show()
else:
    display(Markdown("The test labels of this data set are not public: no confusion matrix."))
