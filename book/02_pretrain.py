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
# # 2. Pretraining
#
# The report starts every backbone from pretrained weights: ImageNet for the ResNets and InceptionV3,
# IG-65M + Kinetics for R(2+1)D-34, and EPIC-Kitchens itself for the GSM backbones (InceptionV3 trained
# TSN-style on the EPIC training split first; BN-Inception's EPIC weights come from the TBN work).
# `egolib.pretrain` resolves each `pretrain` name to
#
# - `imagenet`: real weights `weights/<backbone>-imagenet.pth` or torchvision's file in the torch hub cache;
#   stand-in: the backbone trained to classify synthetic object images;
# - `ig65m_kinetics`: real weights `weights/r2p1d34-ig65m_kinetics.pth` or ig65m-pytorch's file in the hub
#   cache; stand-in: R(2+1)D trained to classify synthetic motion clips;
# - `epic`: real weights `weights/<backbone>-epic.pth`; otherwise a TSN model trained on the run's training
#   split, starting from the `imagenet` backbone (real or stand-in);
# - `scratch`: random initialisation.
#
# Real weights are used only at width 1 (the standard networks). Nothing is downloaded.
#
# **The stand-ins ship with the book**, as published checkpoints do: at the `demo` size each backbone's stand-in
# was trained once, for as long as it needed, and lives in `weights/` beside a manifest that gives its SHA-256,
# the set and recipe that made it, its held-out accuracy and its training time (`egolib.weights`). A run checks
# the file's hash before it loads it; `make weights` trains them all again from scratch (resumable). At other
# sizes (`smoke`, or a width or input size of your own) the stand-in is trained inside the run and cached in
# `runs/pretrain/<pretrain>-<backbone>-w<width>-<preset>-<key>/`, where `<key>` hashes what made it (the recipe,
# the data and the library code). The EPIC backbones are always trained here, on the run's own data.

# %%
# %matplotlib inline
# ruff: noqa: UP045  (papermill's parameter grammar reads `Optional[int]` but not `int | None`)
import logging
from typing import Optional

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from egolib import book, synthetic, train, weights
from egolib import pretrain as pretraining
from egolib.config import RunConfig

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
sns.set_theme(style="whitegrid")

# %% tags=["parameters"]
preset: str = "demo"  # smoke | demo | paper
dataset: str = "epic55"  # epic55 (the report's, test S1/S2) | epic100 (train, validation, test)
data_root: Optional[str] = None  # EPIC-Kitchens root of the dataset; None: the embedded SynthKitchens set
seed: int = 0  # the SynthKitchens draw (data/synthkitchens-<preset>-s<seed>), data order, augmentation, init
device: str = "auto"  # auto | cpu | cuda

# %%
RunConfig.from_params(train.notebook_params(globals()))  # stops on a misspelt name, a wrong type or choice
configs = [RunConfig.from_params({**variant, "preset": preset, "seed": seed, "dataset": dataset,
                                  "data_root": data_root, "device": device}) for variant in book.variants()]
display(pd.DataFrame([{"method": c.method, "backbone": c.backbone, "pretrain": c.pretrain, "width": c.width}
                      for c in configs]))

# %% [markdown]
# ## The stand-in sets
#
# Object images: one main object (the label: a SynthKitchens noun or one of 20 other shape/colour/pattern
# combinations) among up to four smaller ones of any class, sometimes partly covered by one more, on a random
# counter texture, under random lighting, stored as JPEG. Motion clips: an object of one of the same 40 classes
# moving in one of 14 ways (eight directions, two rotations, growing, shrinking, two oscillations), labelled with
# both, as IG-65M's hashtags and Kinetics' classes name the objects as well as the movements: R(2+1)D's stand-in
# learns to classify the motion and the object that moves (two heads on its classifier, their losses summed; the
# object's joins at epoch 6, once the motion is learnt: with both from the start the easier object task kept the
# motion at chance for 8 epochs).
# Trained on the motion alone, it learnt to ignore what moves, and EgoACO R(2+1)D then fitted 30 % of its
# training nouns. Neither set uses a SynthKitchens texture or segment. A few examples of the sets this preset's
# stand-ins learn:

# %%
set_preset = weights.SET_PRESET.get(preset, "weights")
object_cfg, motion_cfg = synthetic.OBJECT_PRESETS[set_preset], synthetic.MOTION_PRESETS[set_preset]
classes = synthetic.object_classes()
fig, axes = plt.subplots(2, 8, figsize=(14, 4))
for ax, i in zip(axes[0], range(0, 8 * 5, 5), strict=True):
    image = synthetic.object_image(i, i % len(classes), classes, object_cfg["size"], 0,
                                   object_cfg.get("clutter_scale", (0.3, 0.7)))
    ax.imshow(image)
    ax.set_title(classes[i % len(classes)].name, fontsize=8)
clip, moving = synthetic.motion_clip(0, 0, classes, motion_cfg["size"], motion_cfg["frames"], 0)  # (T, 3, S, S)
for ax, t in zip(axes[1], range(8), strict=True):
    ax.imshow(clip[min(t, len(clip) - 1)].transpose(1, 2, 0))
    ax.set_title(f"{synthetic.MOTIONS[0]}, {classes[moving].name} t={t}", fontsize=7)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle(f"object images ({len(classes)} classes) and a motion clip ({len(synthetic.MOTIONS)} classes)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The shipped weights
#
# One file per backbone at the `demo` size, stored in half precision and loaded into float32 models; the held-out
# accuracy is that of the half-precision file, on the 10 % of the set kept out of training (chance: 1 in 40 for
# the object images, 1 in 14 for the motion clips, whose held-out items are the centre 3-frame window of each
# clip, the snippet length EgoACO feeds R(2+1)D; 1 in 40 for the object that moves in them).

# %%
shipped = weights.table()
display(shipped.round(3) if len(shipped) else Markdown("No stand-in ships: every one is trained inside its run."))

# %% [markdown]
# ## Pretrain
#
# Every backbone the Table 1 variants need, each once (cached ones are only looked up). GSM + EgoACO starts, as
# in the report, from the backbone of the trained GSM model (`gsm` run of the same backbone), so its backbone
# is made when `03_train` trains it, after the GSM runs.

# %%
done = pretraining.ensure_all(configs, fit=train.fit_model)
table = pd.DataFrame([{"pretrain": p.pretrain, "backbone": k.split("-", 1)[1], "source": p.source, "file": p.path}
                      for k, p in done.items()])
display(table)

# %% [markdown]
# ## Learning curves of the stand-ins
#
# Held-out accuracy is measured on 10 % of each stand-in set kept out of training (centre crop), for a shipped
# stand-in from the log that the manifest lists beside its file; the motion stand-in's second curve is the object
# that moves, and its loss jumps where that task's cross-entropy joins the sum. For `epic` the curve is the TSN
# model's training accuracy on the training split (verbs).

# %%
curves = []
for key, pre in done.items():
    history = pretraining.read_log(pre)
    if history is None:
        continue
    accuracy = history["val_acc"] if "val_acc" in history else history["acc_verb"]
    epoch = history["epoch"] if "val_acc" in history else history["global_epoch"]
    curves.append(pd.DataFrame({"pretraining": key, "epoch": epoch, "loss": history["loss"], "accuracy": accuracy}))
    for column in (c for c in history if c.startswith("val_acc_")):  # a stand-in's other tasks (the moving object)
        curves.append(pd.DataFrame({"pretraining": f"{key}, {column.removeprefix('val_acc_')}", "epoch": epoch,
                                    "loss": float("nan"), "accuracy": history[column]}))
if curves:
    curves = pd.concat(curves, ignore_index=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    sns.lineplot(data=curves, x="epoch", y="loss", hue="pretraining", marker="o", ax=axes[0])
    sns.lineplot(data=curves, x="epoch", y="accuracy", hue="pretraining", marker="o", ax=axes[1], legend=False)
    axes[0].set(title="training loss", ylabel="cross-entropy (nats)")
    axes[1].set(title="held-out accuracy (stand-ins) / training verb accuracy (epic)", ylim=(0, 1),
                ylabel="accuracy (fraction of clips)")
    fig.tight_layout()
    plt.show()
else:
    display(Markdown("Every backbone uses real weights or random initialisation: nothing was trained here."))
