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
# # 5. Inside EgoACO: where does the attention look?
#
# EgoACO pools three descriptors from the frame features, each through its own spatial attention map:
#
# - **act**: LSTA's attention. Its recurrence carries the map from frame to frame.
# - **obj**: the temporally coherent object attention. It uses the same recurrence, driven by the object
#   branch's class-activation map.
# - **ctx**: class-activation pooling, frame by frame, for the context.
#
# The report's claim is that this attention finds the **active object**, the one the hand acts on, among the
# distractors. SynthKitchens records the active object's box in every frame, so the claim can be measured with
# the **pointing game**: an attention map scores a hit when its peak cell's centre lies inside the box.
#
# A score means little without baselines. We compare it with two of them. The **centre prior** always points
# at the centre, and egocentric video puts a lot there. **Random peaks** point at a uniformly drawn cell
# (seeded).
#
# Run it from the repository root after the run exists:
#
# ```bash
# papermill book/05_lsta_attention.ipynb runs/book/05_lsta_attention.ipynb -p preset demo
# ```
#
# Tables and headline numbers are written to `<runs>/book/05_lsta_attention/`. On an EPIC-100 run
# (`-p dataset epic100`) the pointing game is played on its labelled split, validation, where EPIC-55 uses S1 and S2.

# %%
# %matplotlib inline
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from egolib import figures, models, probes, verdicts
from egolib import runs as run_files
from egolib.config import RunConfig

logging.basicConfig(level=logging.WARNING, force=True)
figures.use_book_renderer()
_ = torch.set_grad_enabled(False)  # (returns a context manager, not shown)

# %% tags=["parameters"]
preset: str = "demo"  # smoke | demo | paper: the preset of the run probed
seed: int = 0  # the seed of the run probed
runs: str = "runs"  # the runs root (run folders and runs/book/ live here)
run: str = ""  # the EgoACO run folder under runs ("": egoaco-res34-imagenet-<preset>-s<seed>)
examples: int = 3  # clips in the interactive attention player
limit: int = 0  # probe only the first `limit` test clips of each split (0: all)
dataset: str = "epic55"  # epic55 | epic100: the dataset of the run probed (its labelled splits)
data_root: str = ""  # the runs' dataset root, as they were trained with (-p data_root); "": SynthKitchens

# %% [markdown]
# ## The run
#
# The run is rebuilt from its checkpoint. A missing run stops the chapter with the command that trains it.
# EgoACO is tested on the centre crop, so the maps and boxes below are in that crop.

# %%
run = run or RunConfig.from_params({"method": "egoaco", "backbone": "res34", "pretrain": "imagenet", "preset": preset,
                                    "seed": seed, "dataset": dataset, "data_root": data_root or None}).name
out_dir = Path(runs) / "book" / "05_lsta_attention"
ego = probes.open_run(runs, run)
if not isinstance(ego.model, models.EgoACO):
    raise ValueError(f"run {run} is a {type(ego.model).__name__}: pass -p run <an egoaco or gsm_egoaco run folder>")
verb_names = ego.class_names("verb")
noun_names = ego.class_names("noun")
splits = ego.labelled_splits  # s1, s2 (EPIC-55); validation (EPIC-100: its test labels are hidden)
display(pd.Series({"run": run, "backbone": ego.cfg.backbone, "pretrain": ego.cfg.pretrain,
                   "segments T": ego.cfg.num_segments, "test view": f"{ego.cfg.test_crop} {ego.cfg.input_size} px",
                   "clone": ego.cfg.egoaco_clone}, name="value").to_frame())

# %% [markdown]
# ## The attention over frames
#
# Pick a clip and a branch in the menu, then move the slider through the frames. The heat map is the
# attention, which sums to 1 over the grid. The green box is the active object.

# %%
segments = {split: ego.segments(split) for split in splits}


def attention_clip(split: str, i: int, tag: str = "") -> figures.MapClip:
    pc = ego.clip(split, i)
    att = probes.capture(ego.model, pc.clip[None]).attention  # each (1, T, h, w)
    label = f"{tag}{split.upper() if split in ('s1', 's2') else split} {pc.uid}: {verb_names[pc.verb]} " \
        f"{noun_names[pc.noun]}"
    frame_labels = [f"t={t} (frame {n})" for t, n in enumerate(pc.frame_numbers)]
    return figures.MapClip(label, pc.frames, {b: att[b][0].numpy() for b in probes.BRANCHES}, pc.boxes, frame_labels)


n_first = len(segments[splits[0]])
picks = np.linspace(0, n_first - 1, min(examples, n_first)).round().astype(int)
player_clips = [attention_clip(splits[0], int(i)) for i in np.unique(picks)]
figures.heatmap_player(player_clips, title=f"{run}: attention per branch").show()

# %% [markdown]
# In JupyterLab the same functions take any test clip. For example, `attention_clip("s2", 7)` builds the
# player's input for clip 7 of S2:
#
# ```python
# figures.heatmap_player([attention_clip("s2", 7)])
# ```
#
# The first clip, static (one row per branch, one column per frame):

# %%
figures.heatmap_grid(player_clips[0])
plt.show()

# %% [markdown]
# ## The pointing game on S1 and S2 (EPIC-100: validation)
#
# Every frame of every test clip where the active object is in view counts once. The peak is the first
# maximum in row-major order, and tolerance is 0. The baselines use the same frames, boxes and grid.
# The maps are the ones the run kept from the forward pass that scored these clips (`first_clip_<split>.npz` in the
# run folder, hashed in its `DONE`); for a run tested before runs kept them, or a file that no longer verifies,
# they are computed again from the checkpoint.
# The table gives each branch's hits in % of the frames, the number of frames and the map's grid (cells).

# %%
frames = {split: probes.baseline_hits(probes.attention_probe(ego, split, limit=limit or None), seed=seed)
          for split in splits}
pointing = pd.DataFrame({split.upper() if split in ("s1", "s2") else split: probes.pointing_table(f, seed=seed)
                         for split, f in frames.items()}).T
pointing["frames"] = [len(f) for f in frames.values()]
pointing["grid"] = [f"{int(f.h.iloc[0])}x{int(f.w.iloc[0])}" for f in frames.values()]
out_dir.mkdir(parents=True, exist_ok=True)
with run_files.atomic_open(out_dir / "pointing.csv") as f:
    pointing.rename_axis("split").to_csv(f)
with run_files.atomic_open(out_dir / "pointing_frames.csv") as f:
    pd.concat([fr.assign(split=s) for s, fr in frames.items()], ignore_index=True).to_csv(f, index=False)
display(pointing.round(1))

# %%
scores = pointing[["act", "obj", "ctx", "centre", "random"]]
figures.bars_figure(scores, title=f"Pointing game (% of frames), {run}", yaxis="% hits", xaxis="test split").show()

# %%
figures.bars_twin(scores, title=f"Pointing game (% of frames), {run}", yaxis="% hits", xaxis="test split")
plt.show()

# %% [markdown]
# ## Where the attention finds the object, and where it misses
#
# Each test clip (S1 and S2; EPIC-100: validation) gets the share of its frames where the object branch hits.
# Below are the clips with the highest and the lowest share. Open a clip in the menu and compare the branches.

# %%
per_clip = pd.concat([f.assign(split=s) for s, f in frames.items()]).groupby(["split", "uid"], sort=False)["hit_obj"]
per_clip = per_clip.mean().sort_values(kind="stable")
best, worst = per_clip.index[-1], per_clip.index[0]


def index_of(split: str, uid: str) -> int:
    return int(np.flatnonzero(segments[split].uid.astype(str).to_numpy() == uid)[0])


contrast = [attention_clip(best[0], index_of(*best), f"finds ({100 * per_clip.iloc[-1]:.0f} %) "),
            attention_clip(worst[0], index_of(*worst), f"misses ({100 * per_clip.iloc[0]:.0f} %) ")]
figures.heatmap_player(contrast, title="Object attention: best and worst clip").show()

# %%
for c in contrast:
    figures.heatmap_grid(c)
plt.show()

# %% [markdown]
# ## Headline numbers
#
# These are written to `summary.json` next to the tables. The book reports them whatever they are.

# %%
names = {"act": "LSTA (act) attention", "obj": "object attention", "ctx": "context attention",
         "centre": "centre-prior baseline", "random": "random-peak baseline"}
summary = {
    f"pointing_{b}_{split.lower()}": {"value": float(pointing.loc[split, b]), "unit": "%",
                                      "label": f"pointing game, {names[b]}, {split} ({run})"}
    for split in pointing.index for b in names
}
run_files.write_json(out_dir / "summary.json", summary)
display(pd.DataFrame(summary).T)

# %% [markdown]
# ## What the numbers say
#
# The note below is generated from the measured numbers. At the `smoke` preset the run trains for one epoch
# per stage, on 2x2 maps, so every number is meaningless. Only the `demo` and `paper` runs say anything.
#
# The verdict on the report's claim that EgoACO attends to the active object is `egolib.verdicts`'
# `egoaco_attends_to_object`, on `pointing_frames.csv`: the function and the file the claims page reads.

# %%
lines = []
for split in pointing.index:
    p = pointing.loc[split]
    lines.append(
        f"- **{split}** ({int(p.frames)} frames, {p.grid} maps): act {p.act:.1f} %, obj {p.obj:.1f} %, ctx "
        f"{p.ctx:.1f} %, against the centre prior {p.centre:.1f} % and random peaks {p.random:.1f} %."
    )
claim = verdicts.egoaco_attends_to_object(pd.read_csv(out_dir / "pointing_frames.csv"))
display(Markdown(f"Pointing game of `{run}` (`{preset}` preset):\n\n" + "\n".join(lines)
                 + f"\n\n**The object branch attends to the active object: {claim.outcome}.** {claim.criterion} "
                 + "Differences: " + claim.text() + "."))
