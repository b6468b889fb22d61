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
#       jupytext_version: 1.19.6
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
#   stand-in: the backbone trained to classify SynthObjects (object images);
# - `ig65m_kinetics`: real weights `weights/r2p1d34-ig65m_kinetics.pth` or ig65m-pytorch's file in the hub
#   cache; stand-in: R(2+1)D trained to classify SynthMotion (motion clips);
# - `epic`: real weights `weights/<backbone>-epic.pth`; otherwise a TSN model trained on the run's training
#   split, starting from the `imagenet` backbone (real or stand-in);
# - `scratch`: random initialisation.
#
# Real weights are used only at width 1 (the standard networks).
#
# Nothing is downloaded. What is trained here is cached in
# `runs/pretrain/<pretrain>-<backbone>-w<width>-<preset>-<key>/`, where `<key>` hashes what made it (the recipe,
# the data and the library code), and reused by every training run (`03_train`) with the same key. The
# parameters are those of `03_train`; this notebook pretrains the backbone of that configuration and then every
# backbone the Table 1 variants of `configs/variants.yaml` need at the same preset.

# %%
# %matplotlib inline
# ruff: noqa: UP045  (papermill's parameter grammar reads `Optional[int]` but not `int | None`)
import logging
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from egolib import book, synthetic, train
from egolib import pretrain as pretraining
from egolib.config import RunConfig

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
sns.set_theme(style="whitegrid")

# %% tags=["parameters"]
method: str = "egoaco"  # tsn | gsm | egoaco | gsm_egoaco
backbone: str = "res34"  # bninc | incv3 | res34 | res101 | res152 | r2p1d34
pretrain: Optional[str] = None  # imagenet | epic | ig65m_kinetics | scratch (None: the report's choice)
preset: str = "demo"  # smoke | demo | paper
data_root: Optional[str] = None  # EPIC-Kitchens-55 root; None: the embedded SynthKitchens set of the preset
seed: int = 0  # seeds data order, augmentation and initialisation
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
weight_decay: float = 0.0005  # SGD weight decay
momentum: float = 0.9  # SGD momentum
batch_size: Optional[int] = None  # clips per optimiser step (per process under DDP)
dropout: float = 0.5  # dropout before the classifiers
clip_grad: float = 20.0  # global L2 norm for gradient clipping (0 disables)
test_clips: int = 2  # clips per test segment, predictions averaged
test_crop: Optional[str] = None  # full (fully-convolutional, GSM) | centre (EgoACO)
egoaco_clone: str = "top_stage"  # EgoACO: clone the top conv stage three times, or only the fc dictionary
lsta_memory: Optional[int] = None  # LSTA memory channels (paper: 512)
lsta_pool: Optional[int] = None  # LSTA output-pooling classes (paper: 300)
device: str = "auto"  # auto | cpu | cuda
num_workers: Optional[int] = None  # DataLoader workers (0 on CPU: the cores train)
run_dir: Optional[str] = None  # run folder; None: runs/<method>-<backbone>-<pretrain>-<preset>-s<seed>

# %%
cfg = RunConfig.from_params(train.notebook_params(globals()))
display(pd.Series(cfg.to_dict(), name="value").to_frame())

# %% [markdown]
# ## The stand-in sets
#
# SynthObjects: one main object (the label: a SynthKitchens noun or one of 20 other shape/colour/pattern
# combinations) and up to two smaller ones on a random counter texture. SynthMotion: a random shape moving in
# one of 16 ways (eight directions, two rotations, growing, shrinking, two oscillations). Neither uses the
# textures of the SynthKitchens test kitchens.

# %%
size = "smoke" if cfg.preset == "smoke" else "demo"
objects, object_labels, object_names = synthetic.load_object_images(
    synthetic.generate_object_images(Path("data") / f"objects-{size}", preset=size, seed=0))
clips, clip_labels, motion_names = synthetic.load_motion_clips(
    synthetic.generate_motion_clips(Path("data") / f"motion-{size}", preset=size, seed=0))
fig, axes = plt.subplots(2, 8, figsize=(14, 4))
for ax, i in zip(axes[0], range(0, 8 * 5, 5), strict=True):
    ax.imshow(objects[i].permute(1, 2, 0).numpy())
    ax.set_title(object_names[int(object_labels[i])], fontsize=9)
for ax, t in zip(axes[1], range(8), strict=True):
    ax.imshow(clips[0, min(t, clips.shape[1] - 1)].permute(1, 2, 0).numpy())
    ax.set_title(f"{motion_names[int(clip_labels[0])]} t={t}", fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle(f"SynthObjects ({len(objects)} images, {len(object_names)} classes) and a SynthMotion clip "
             f"({len(clips)} clips, {len(motion_names)} classes)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Pretrain
#
# First the backbone of this notebook's configuration, then every other one the Table 1 variants need (cached
# ones are only looked up). GSM + EgoACO starts, as in the report, from the backbone of the trained GSM model
# (`gsm` run of the same backbone), so its backbone is made when `03_train` trains it, after the GSM runs.

# %%
shared = {"preset": cfg.preset, "seed": cfg.seed, "data_root": cfg.data_root, "device": cfg.device}
wanted = [cfg] + [RunConfig.from_params({**variant, **shared}) for variant in book.variants()]
done: dict[str, pretraining.Pretraining] = {}
for c in wanted:
    key = f"{c.pretrain}-{c.backbone}"
    if key not in done and (c is cfg or not (c.method == "gsm_egoaco" and c.pretrain == "epic")):
        done[key] = pretraining.ensure(c, fit=train.fit_model)
table = pd.DataFrame([{"pretrain": p.pretrain, "backbone": k.split("-", 1)[1], "source": p.source, "file": p.path}
                      for k, p in done.items()])
display(table)
display(Markdown(f"**This configuration ({cfg.backbone}, pretrain={cfg.pretrain}) uses:** "
                 f"{done[f'{cfg.pretrain}-{cfg.backbone}'].describe()}."))

# %% [markdown]
# ## Learning curves of the stand-ins
#
# Held-out accuracy is measured on 10 % of each stand-in set kept out of training (centre crop). For `epic`
# the curve is the TSN model's training accuracy on the training split (verbs).

# %%
curves = []
for key, pre in done.items():
    history = pretraining.read_log(pre)
    if history is None:
        continue
    accuracy = history["val_acc"] if "val_acc" in history else history["acc_verb"]
    epoch = history["epoch"] if "val_acc" in history else history["global_epoch"]
    curves.append(pd.DataFrame({"pretraining": key, "epoch": epoch, "loss": history["loss"], "accuracy": accuracy}))
if curves:
    curves = pd.concat(curves, ignore_index=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    sns.lineplot(data=curves, x="epoch", y="loss", hue="pretraining", marker="o", ax=axes[0])
    sns.lineplot(data=curves, x="epoch", y="accuracy", hue="pretraining", marker="o", ax=axes[1], legend=False)
    axes[0].set(title="training loss")
    axes[1].set(title="held-out accuracy (stand-ins) / training verb accuracy (epic)", ylim=(0, 1))
    fig.tight_layout()
    plt.show()
else:
    display(Markdown("Every backbone uses real weights or random initialisation: nothing was trained here."))
