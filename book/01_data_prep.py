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
# # 1. The data: SynthKitchens (or your EPIC-Kitchens-55 copy)
#
# EPIC-Kitchens is about 1 TB of frames behind a licence, so the book's embedded default is
# **SynthKitchens**, a procedurally generated egocentric kitchen dataset written in the exact
# EPIC-Kitchens-55 layout (`annotations/EPIC_*.csv`, `frames_rgb_flow/rgb/{train,test}/P01/P01_01/frame_*.jpg`).
# The loaders, metrics and submission writers that serve the real dataset are the ones used on it.
#
# It is built to probe what the models claim:
# - **temporal order**: verbs come in time-reversal pairs (take/put, open/close, turn-on/turn-off,
#   push/pull); an order-blind model cannot tell the two verbs of a pair apart;
# - **the active object**: the noun is the object the hand acts on, with 2-4 distractor objects of
#   other classes in view (some of them moving);
# - **ego-motion**: the camera wearer's head pans, rolls and zooms, with occasional fast head turns;
# - **seen vs unseen kitchens**: S1 holds out videos of training kitchens, S2 holds out whole kitchens.
#
# With `data_root` set to a real EPIC-Kitchens-55 copy (annotation CSVs in `<data_root>/annotations/`,
# frames in `<data_root>/frames_rgb_flow/rgb/`, extracted or as per-video tars), this notebook instead
# checks that copy: the annotations are readable and every frame a segment refers to is present.
#
# With `dataset` set to `epic100` it works on EPIC-KITCHENS-100's layout instead (SynthKitchens written that way,
# or a real copy: `annotations/EPIC_100_*.csv`, frames in `PXX/rgb_frames/PXX_YY/`). The splits are then train,
# validation (public labels; its unseen participants play the part of S2's unseen kitchens) and test (labels
# hidden), and the rare classes are EPIC-100's *tail* classes instead of EPIC-55's few-shot ones.

# %% tags=["parameters"]
preset: str = "demo"  # smoke | demo: the size of the generated SynthKitchens
data_root: str = ""  # a real EPIC-Kitchens copy (of `dataset`) to check; empty: generate SynthKitchens
seed: int = 0  # SynthKitchens draw: data/synthkitchens-<preset>-s<seed>; the same seed gives byte-identical files
dataset: str = "epic55"  # epic55 | epic100: the layout (and splits) of the data set

# %%
# %matplotlib inline
import logging
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display
from matplotlib.patches import Rectangle

from egolib import epic, synthetic
from egolib.config import RunConfig

logging.basicConfig(level=logging.INFO, format="%(message)s")
synthetic_data = not data_root
epic100 = dataset == "epic100"
# the folder training reads: data/synthkitchens-[epic100-]<preset>-s<seed> (one folder per draw), or data_root
root = RunConfig.from_params({"preset": preset, "seed": seed, "data_root": data_root or None,
                              "dataset": dataset}).dataset_path
if synthetic_data:
    t0 = time.time()
    synthetic.ensure(root, preset=preset, seed=seed, layout=dataset)
    print(f"SynthKitchens {preset} (seed {seed}{', EPIC-100 layout' if epic100 else ''}) in {root}: ready after "
          f"{time.time() - t0:.1f} s ({synthetic.disk_usage(root) / 1e6:.1f} MB on disk)")
else:
    print(f"checking the {'EPIC-KITCHENS-100' if epic100 else 'EPIC-Kitchens-55'} copy in {root}")

# %% [markdown]
# ## Annotations and frames
#
# The annotations are read with `egolib.epic`, the same readers the training notebook uses; a missing
# column or a bad value stops here with the file, line and column named. Then every frame that a
# train, S1 or S2 segment (EPIC-100: train, validation or test) refers to (`start_frame`..`stop_frame`, both
# inclusive) is looked up.

# %%
def missing_epic100_frames(root, splits: dict) -> pd.DataFrame:
    """The segments of EPIC-100 splits with missing frames (`epic.missing_frames` reads the EPIC-55 layout)."""
    source = epic.frame_source(root, "epic100", "train")  # PXX/rgb_frames/<video>: one place for every split
    rows, present = [], {}
    for split, df in splits.items():
        for r in df.itertuples(index=False):
            if (r.participant_id, r.video_id) not in present:
                present[(r.participant_id, r.video_id)] = source.frame_numbers(r.participant_id, r.video_id) or set()
            have = present[(r.participant_id, r.video_id)]
            gone = [f for f in range(int(r.start_frame), int(r.stop_frame) + 1) if f not in have]
            if gone:
                rows.append([split, r.narration_id, r.participant_id, r.video_id, int(r.start_frame),
                             int(r.stop_frame), len(gone)])
    return pd.DataFrame(rows, columns=["split", "narration_id", "participant_id", "video_id", "start_frame",
                                       "stop_frame", "missing"])


if epic100:
    ann = epic.load_epic100(root / "annotations")
    used = ("train", "validation", "test", "verb_classes", "noun_classes", "tail_verbs", "tail_nouns",
            "unseen_validation")  # what this chapter reads (training needs the same: egolib.train.EPIC100_NEEDED)
    absent = [epic.EPIC100_FILES[name][0] for name in used if getattr(ann, name) is None]
    if absent:
        raise FileNotFoundError(f"{root / 'annotations'} lacks {', '.join(absent)}: copy them from the "
                                "epic-kitchens-100-annotations repository")
    train_labels = ann.train.assign(uid=ann.train.narration_id)  # clips and boxes name a segment by narration id
    splits = {"train": ann.train, "validation": ann.validation, "test (labels hidden)": ann.test}
    keys = ("train", "validation", "test")
    missing = missing_epic100_frames(root, dict(zip(keys, splits.values(), strict=True)))
else:
    threshold = synthetic.many_shot_threshold(len(epic.read_epic55_train(root / "annotations" /
                                                                         "EPIC_train_action_labels.csv"))) \
        if synthetic_data else 100
    ann = epic.load_epic55(root / "annotations", many_shot_threshold=threshold)
    train_labels = ann.train
    missing = epic.missing_frames(root)
    splits = {"train": ann.train, "S1 (seen)": ann.test_s1, "S2 (unseen)": ann.test_s2}
    keys = ("train", "s1", "s2")
summary = pd.DataFrame({
    name: {"segments": len(df), "videos": df.video_id.nunique(), "kitchens": df.participant_id.nunique(),
           "frames in segments": int((df.stop_frame - df.start_frame + 1).sum()),
           "segments with missing frames": int((missing.split == key).sum())}
    for (name, df), key in zip(splits.items(), keys, strict=True)
}).T.rename_axis(index="split", columns="count")
display(summary)

# %%
if missing.empty:
    print("every referenced frame is present")
else:
    print(f"{len(missing)} segments miss {int(missing.missing.sum())} frames; the first ones:")
    display(missing.head(20))
    if synthetic_data:
        raise RuntimeError(f"the generated set in {root} is incomplete: delete it and run this notebook again")

# %% [markdown]
# ## Class distributions
#
# Verbs and nouns are long-tailed, as in EPIC. A class is **many-shot** when it has more than
# `threshold` training segments (EPIC-55's rule with its threshold of 100; SynthKitchens scales the
# threshold to its size and writes it in its README). The EPIC precision/recall metrics average over
# many-shot classes only. EPIC-100 instead names **tail** classes, the smallest classes that together hold
# 20 % of the training segments, and reports top-1 accuracy on their segments.

# %%
if epic100:
    verb_names, noun_names = ann.verb_classes.key.tolist(), ann.noun_classes.key.tolist()
    common = {"verb": [i for i in range(len(verb_names)) if i not in ann.tail_verbs],
              "noun": [i for i in range(len(noun_names)) if i not in ann.tail_nouns]}
    kinds = ("head", "tail")
    print(f"tail classes (20 % of the training segments): {len(ann.tail_verbs)} of {len(verb_names)} verbs, "
          f"{len(ann.tail_nouns)} of {len(noun_names)} nouns")
else:
    verb_names, noun_names = ann.verb_classes.class_key.tolist(), ann.noun_classes.class_key.tolist()
    many = ann.many_shot_for_metrics
    common = {"verb": many.verbs, "noun": many.nouns}
    kinds = ("many-shot", "few-shot")
    print(f"many-shot threshold {threshold}: {len(many.verbs)} verbs, {len(many.nouns)} nouns, "
          f"{len(many.actions)} actions")


def class_counts(column: str, names: list[str], common_ids: list[int]) -> pd.DataFrame:
    counts = train_labels[column].value_counts()
    df = pd.DataFrame({"class": [names[i] for i in counts.index], "segments": counts.to_numpy(),
                       "kind": [kinds[0] if i in common_ids else kinds[1] for i in counts.index]})
    return df


fig, axes = plt.subplots(1, 2, figsize=(14, 4), gridspec_kw={"width_ratios": [len(verb_names), len(noun_names)]})
for ax, (column, names, ids, title) in zip(axes, [("verb_class", verb_names, common["verb"], "verbs"),
                                                 ("noun_class", noun_names, common["noun"], "nouns")], strict=True):
    df = class_counts(column, names, ids)
    if len(df) > 60:  # real EPIC: show the 60 most frequent classes
        df = df.head(60)
    sns.barplot(data=df, x="class", y="segments", hue="kind", dodge=False, ax=ax,
                palette=dict(zip(kinds, ("tab:blue", "tab:orange"), strict=True)))
    if not epic100:
        ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold}")
    ax.set_yscale("log")
    ax.set_title(f"training segments per {title[:-1]} class (log scale)")
    ax.set(xlabel=f"{title[:-1]} class", ylabel="training segments (count, log scale)")
    ax.tick_params(axis="x", rotation=90)
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Verb-noun co-occurrence
#
# Only compatible pairs occur (you cut vegetables, pour from containers, open lidded or hinged
# things), so the set of actions is sparse and uneven.

# %%
co = pd.crosstab(train_labels.verb_class, train_labels.noun_class)
co = co.reindex(index=range(min(len(verb_names), 40)), columns=range(min(len(noun_names), 60)), fill_value=0)
fig, ax = plt.subplots(figsize=(12, 5))
sns.heatmap(np.log10(co.replace(0, np.nan)), ax=ax, cmap="viridis", cbar_kws={"label": "log10 segments"},
            xticklabels=[noun_names[i] for i in co.columns], yticklabels=[verb_names[i] for i in co.index])
ax.set_xlabel("noun")
ax.set_ylabel("verb")
ax.set_title(f"{int((co > 0).sum().sum())} verb-noun pairs occur in training (blank: never)")
plt.show()

# %% [markdown]
# ## Kitchens: seen and unseen
#
# One frame from the middle of a segment, for several kitchens. Each kitchen has its own counter
# texture, palette, lighting, camera height and skin tone; the S2 kitchens (EPIC-100: the unseen participants of
# validation) are never seen in training.
# In SynthKitchens the green box is the active object and the red ones are distractors
# (`annotations/synth_object_boxes.csv`, used later by the attention probe).

# %%
boxes_file = root / "annotations" / "synth_object_boxes.csv"
boxes = pd.read_csv(boxes_file, dtype={"uid": str}) if boxes_file.is_file() else None
if epic100:  # every split's frames are under PXX/rgb_frames/; unseen: validation's unseen participants
    frames = {"train": epic.frame_source(root, "epic100", "train")}
    unseen = ann.validation[ann.validation.participant_id.isin(ann.unseen_validation)]
    unseen_name = "validation, unseen participants"
    labelled = pd.concat([train_labels.assign(split="train", folder="train"),
                          unseen.assign(uid=unseen.narration_id, split="unseen", folder="train")], ignore_index=True)
else:
    frames = {"train": epic.FrameSource(epic.frames_root(root, "train")),
              "test": epic.FrameSource(epic.frames_root(root, "test"))}
    unseen_name = "S2"
    labelled = pd.concat([ann.train.assign(split="train", folder="train"),
                          (ann.test_s2_labels if ann.test_s2_labels is not None else ann.test_s2)
                          .assign(split="unseen", folder="test")], ignore_index=True)


def show_frame(ax, seg, frame_number: int, title: str | None = None) -> None:
    img = frames[seg.folder].read(seg.participant_id, seg.video_id, [frame_number], str(seg.uid))[0]
    ax.imshow(img.permute(1, 2, 0).numpy())
    if boxes is not None:
        rows = boxes[(boxes.uid == str(seg.uid)) & (boxes.frame == frame_number) & (boxes.visible == 1)]
        for r in rows.itertuples():
            ax.add_patch(Rectangle((r.x1, r.y1), r.x2 - r.x1, r.y2 - r.y1, fill=False, lw=1.2,
                                   color="lime" if r.role == "active" else "red"))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def narration(seg) -> str:
    return seg.narration if "narration" in seg._fields else f"uid {seg.uid}"


picks = []
for split in ("train", "unseen"):
    part = labelled[labelled.split == split]
    for p in sorted(part.participant_id.unique())[:4]:
        picks.append(next(part[part.participant_id == p].itertuples()))
fig, axes = plt.subplots(2, 4, figsize=(14, 4.4))
for ax in axes.ravel():
    ax.set_axis_off()
for i, seg in enumerate(picks[:8]):
    ax = axes.ravel()[i]
    middle = (seg.start_frame + seg.stop_frame) // 2
    show_frame(ax, seg, middle, f"{seg.participant_id} ({'unseen' if seg.split == 'unseen' else 'seen'}): "
               f"{narration(seg)}")
fig.suptitle(f"Middle frame of one segment per kitchen: top row seen (train), bottom row unseen ({unseen_name})")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Segments as frame strips
#
# Eight frames per segment, at the segment centres that TSN-style test sampling takes
# (`egolib.epic.test_offsets`): what an 8-frame model sees of the action.

# %%
strip_segments = list(train_labels.sample(n=min(5, len(train_labels)), random_state=seed)
                      .assign(folder="train").itertuples())
fig, axes = plt.subplots(len(strip_segments), 8, figsize=(16, 1.25 * len(strip_segments) + 0.3), squeeze=False)
for row, seg in zip(axes, strip_segments, strict=True):
    offsets = epic.test_offsets(seg.stop_frame - seg.start_frame + 1, 8)
    for j, (ax, k) in enumerate(zip(row, offsets, strict=True)):
        show_frame(ax, seg, seg.start_frame + k, narration(seg) if j == 0 else None)
fig.suptitle("Eight test-sampled frames per training segment, time running left to right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The order probe: a time-reversal pair
#
# A segment of one verb of a reversal pair, a segment of the other verb, and the first segment played
# backwards. In SynthKitchens the reversed motion program of one verb is exactly the other's (tested in
# `tests/test_synthetic.py`), so a model that ignores frame order sees the same evidence for both.

# %%
pair = next(((a, b) for a, b in synthetic.REVERSAL_PAIRS
             if a in verb_names and b in verb_names
             and (train_labels.verb_class == verb_names.index(a)).any()
             and (train_labels.verb_class == verb_names.index(b)).any()), None)
if pair is None:
    print("no reversal pair with both verbs in the training split")
else:
    first = next(train_labels[train_labels.verb_class == verb_names.index(pair[0])].assign(folder="train")
                 .itertuples())
    second = next(train_labels[train_labels.verb_class == verb_names.index(pair[1])].assign(folder="train")
                  .itertuples())
    rows = [(first, False, f"{narration(first)}"), (second, False, f"{narration(second)}"),
            (first, True, f"{narration(first)}, played backwards")]
    fig, axes = plt.subplots(3, 8, figsize=(16, 4.2))
    for row, (seg, backwards, title) in zip(axes, rows, strict=True):
        offsets = epic.test_offsets(seg.stop_frame - seg.start_frame + 1, 8)
        order = offsets[::-1] if backwards else offsets
        for j, (ax, k) in enumerate(zip(row, order, strict=True)):
            show_frame(ax, seg, seg.start_frame + k, title if j == 0 else None)
    fig.suptitle(f"A time-reversal pair: {pair[0]}, {pair[1]}, and the {pair[0]} segment played backwards")
    plt.tight_layout()
    plt.show()
