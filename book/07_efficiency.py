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
# # 7. Efficiency: what each variant costs
#
# The GSM paper {cite:p}`sudhakaran2020gsm` sells accuracy at almost no cost: a gate with few parameters and little
# arithmetic. This chapter puts a price on every variant of Table 1 and checks that claim on running code:
#
# * parameters, FLOPs per clip, training and inference throughput and memory, measured side by side in one
#   process by `benchmarks/bench_models.py` (interleaved repetitions, medians, CPU time as well as wall time);
# * the GSM overhead over TSN on the same backbone, in FLOPs (counted here twice: by a FLOP counter and by hand)
#   and in training-step time;
# * how the cost grows with frames per clip and input size;
# * accuracy against cost, for the runs this book trained (read from their run folders);
# * the CPU levers per member (channels-last weights, the evaluation batch), when `benchmarks/bench_levers.py`
#   has measured them;
# * what the demo book cost per step, and what the paper preset would cost in GPU-hours (an estimate).
#
# ```bash
# python benchmarks/bench_models.py --json runs/book/07_efficiency/bench.json    # the measurements (minutes)
# papermill book/07_efficiency.ipynb out.ipynb -p preset demo
# ```

# %%
# %matplotlib inline
import json
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from egolib import book, efficiency
from egolib import runs as run_files
from egolib.config import RunConfig

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
sns.set_theme(style="whitegrid")

# %% tags=["parameters"]
preset: str = "demo"  # smoke | demo | paper: the preset of the run folders to read
seed: int = 0  # the seed of the run folders to read
runs: str = "runs"  # the runs root (run folders and runs/book/)
bench: str = ""  # bench_models.py JSON; empty: <runs>/book/07_efficiency/bench.json, measured here when missing
gpu_bench: str = ""  # benchmarks/gpu.py JSON; empty: <runs>/book/07_efficiency/gpu.json when it exists
levers: str = ""  # bench_levers.py JSON; empty: <runs>/book/07_efficiency/levers.json when it exists
gpu_tflops: float = 100.0  # sustained training TFLOP/s assumed for the GPU-hours estimate without a GPU JSON
dataset: str = "epic55"  # epic55 | epic100: the dataset of the run folders to read (its labelled split)
data_root: str = ""  # the runs' dataset root, as they were trained with (-p data_root); "": SynthKitchens

# %% [markdown]
# ## The measurements
#
# The benchmark file is read when it exists. When it is missing, this notebook runs the benchmark and keeps the
# file: at the `smoke` preset in its quick mode (smoke sizes, two timed steps: a minute, numbers meaningless),
# otherwise at the demo sizes (width 1/4, 8 frames, 80 px, batch 8: several minutes). The benchmark runs on one
# intra-op thread unless told otherwise (`--threads`); the line below says what this file used.

# %%
data_root = data_root or None
dataset = RunConfig.from_params({"preset": preset, "seed": seed, "dataset": dataset, "data_root": data_root}).dataset
labelled = efficiency.LABELLED_SPLITS[dataset][0]  # S1 (EPIC-55) or validation (EPIC-100): the accuracy shown
labelled_name = {"s1": "S1"}.get(labelled, labelled)
out_dir = Path(runs) / "book" / "07_efficiency"
out_dir.mkdir(parents=True, exist_ok=True)
bench_path = Path(bench) if bench else out_dir / "bench.json"
measured_here = not bench_path.is_file()
result = efficiency.ensure_benchmark(bench_path, quick=preset == "smoke")
meta = result["meta"]
display(Markdown(
    f"**Benchmark:** `{bench_path}` ({'measured by this notebook' if measured_here else 'read'}); "
    f"{meta['preset']} sizes, {meta['threads']} thread(s), torch {meta['torch']}, {meta['date']}, "
    f"{meta['seconds']:.0f} s. fp32 matmul peak in the same run: {result['matmul_gflops']['cpu']:.0f} GFLOP "
    f"per CPU second."
))

# %% [markdown]
# ## Cost per variant
#
# Throughput is clips per CPU second of one training step (forward, the three cross-entropies, backward,
# clipping, SGD) and of one inference forward, at the benchmark's sizes; all variants ran in the same rounds.
# "Peak" is the share of the matmul peak that a training step reaches (FLOPs counted by
# `torch.utils.flop_counter`, forward + backward). Memory counts weights, gradients, momentum and the activations
# autograd saves.

# %%
cost = efficiency.variant_costs(result)
run_files.write_text(out_dir / "cost.csv", cost.to_csv(index=False))
display(cost.round(3))

# %% [markdown]
# ## The GSM overhead, measured
#
# Each GSM adds a BN3d + ReLU, a 3x3x3 gate convolution with two outputs and element-wise gating, shifting and
# fusion. In FLOPs that is little. In time, at small sizes, the element-wise work and the per-operation overhead
# count more than the arithmetic: the ratio below is the training step of GSM over TSN on the same backbone,
# median of interleaved rounds (CPU time; "paired" is the median of the per-round ratios).

# %%
overhead = efficiency.gsm_overhead(result)
run_files.write_text(out_dir / "gsm_overhead.csv", overhead.to_csv(index=False))
display(overhead.round(4))
fig, ax = plt.subplots(figsize=(7, 3.6))
bars = overhead.melt(id_vars="backbone", var_name="ratio", value_name="GSM / TSN",
                     value_vars=["hand_count_flop_ratio_paper_sizes", "flop_ratio_paper_sizes", "flop_ratio",
                                 "step_ratio_cpu"])
sns.barplot(data=bars, x="backbone", y="GSM / TSN", hue="ratio", ax=ax)
ax.axhline(1.0, color="black", linewidth=1)
ax.set(ylim=(0.95, max(1.3, bars["GSM / TSN"].max() + 0.02)), title="GSM over TSN: FLOPs, step time",
       ylabel="GSM / TSN (ratio; 1 = no overhead)")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# Every ratio here is counted here, none is the paper's: the GSMs' extra multiply-adds counted by hand at the paper
# input sizes (`efficiency.gsm_gate_count`: 27 C multiply-adds per position of each gate's C-channel map, from a
# table of where each GSM sits; a test checks it against the FLOP counter), the FLOPs that `torch.utils.flop_counter`
# counts at the paper sizes and at the benchmark's sizes, and the step time a CPU user pays:

# %%
display(Markdown("\n".join(
    f"- **{r.backbone}**: counted here by hand +{100 * (r.hand_count_flop_ratio_paper_sizes - 1):.2f} % FLOPs at the "
    f"paper sizes; by the FLOP counter +{100 * (r.flop_ratio_paper_sizes - 1):.2f} % at the paper sizes and "
    f"+{100 * (r.flop_ratio - 1):.2f} % at the benchmark's ({r.sizes}); a training step takes "
    f"{r.step_ratio_cpu:.2f}x TSN's CPU time."
    for r in overhead.itertuples()
)))

# %% [markdown]
# ## Cost against frames and input size
#
# One model (GSM on BN-Inception) with one size changed at a time. FLOPs grow linearly with the frames and with
# the square of the input side; step time follows once the tensors are large enough for the arithmetic to
# dominate.

# %%
grow = efficiency.scaling(result)
run_files.write_text(out_dir / "scaling.csv", grow.to_csv(index=False))
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, axis, label in zip(axes, ("num_segments", "input_size"), ("frames per clip", "input side (px)"), strict=True):
    part = grow[grow["axis"] == axis]
    ax.plot(part[axis], part["gflops_per_clip"], marker="o", color="C0")
    ax.set(xlabel=label, ylabel="GFLOP per clip (forward)", title=f"cost vs {label}")
    twin = ax.twinx()
    twin.plot(part[axis], part["train_step_cpu_s"], marker="s", color="C1")
    twin.set_ylabel("training step, CPU s", color="C1")
    twin.grid(False)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Accuracy against cost
#
# Test action top-1 on S1 (EPIC-100: validation) of every Table 1 run of this preset and seed that is complete in
# the runs root, against
# the benchmark's forward FLOPs per clip and training throughput of the same variant. Runs that are not there are
# skipped, with a note. (The benchmark's sizes are those of its own preset; compare like with like.)

# %%
variants = book.variants()
trained, notes = efficiency.run_results(runs, variants, preset, seed, dataset, data_root)
for note in notes:
    display(Markdown(f"- {note}"))
if len(trained):
    merged = trained.merge(cost, on=["method", "backbone"], how="left")
    run_files.write_text(out_dir / "runs.csv", merged.to_csv(index=False))
    accuracy = [f"top1_action_{s}" for s in efficiency.LABELLED_SPLITS[dataset]]
    display(merged[["run", *accuracy, "gflops_per_clip", "train_clips_per_s"]].round(3))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x, label in zip(axes, ("gflops_per_clip", "train_clips_per_s"),
                            ("GFLOP per clip", "training clips per CPU second"), strict=True):
        sns.scatterplot(data=merged, x=x, y=f"top1_action_{labelled}", hue="method", style="backbone", s=80, ax=ax)
        ax.set(xlabel=label, ylabel=f"{labelled_name} action top-1 (%)",
               title=f"{labelled_name} action top-1 vs {label}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.show()
else:
    display(Markdown(f"No complete run folder for preset `{preset}`, seed {seed} under `{runs}`: no accuracy plot."))

# %% [markdown]
# ## What the book cost, step by step
#
# Read from each complete run folder: `log.csv` (seconds and clips of every epoch; steps = clips / batch size
# from `config.json`) and `metrics.json`'s `resources` (training seconds including pretraining checks and data
# loading, added up over every process that trained the run, resumes included; total seconds: training plus testing;
# peak resident memory of the training process).

# %%
if len(trained) and "s_per_step" in trained:
    steps = trained[["run", "epochs", "clips", "epoch_s", "s_per_step", "s_per_clip", "train_s", "total_s",
                     "peak_rss_mb"]]
    display(steps.round(3))
    display(Markdown(f"Training time of these runs together: **{trained['train_s'].sum() / 3600:.2f} h** "
                     f"(sum of `resources.train_s`); testing included: {trained['total_s'].sum() / 3600:.2f} h."))
else:
    display(Markdown("No run folder with a `log.csv`: nothing to report."))

# %% [markdown]
# ## CPU levers
#
# What a training step and a test forward cost per clip, for each member of the demo book, with contiguous weights (how
# runs train on a CPU unless `-p channels_last on`) and with channels-last ones (`channels_last_3d` for the 3D kernels
# of R(2+1)D and of the GSM gates), measured side by side in one run by `benchmarks/bench_levers.py`, with the
# evaluation batch that costs least per test clip. Read from `levers` (default `<runs>/book/07_efficiency/levers.json`)
# when it exists; the book does not measure it (minutes). A speed-up here is not yet a recipe: each member's accuracy
# with the lever on is checked on the validation split before a preset turns it on.

# %%
levers_path = Path(levers) if levers else out_dir / "levers.json"
if levers_path.is_file():
    measured = json.loads(levers_path.read_text())
    lever_table = pd.DataFrame(measured["memory_format"]).set_index("member")
    lever_table["best eval batch"] = pd.DataFrame(measured["eval_batch"]).set_index("member")["best_batch"]
    cols = {"train_cpu_s_per_clip_contiguous": "train CPU-s/clip", "train_peak_fraction_contiguous": "train peak",
            "train_channels_last_speedup": "train x ch-last", "infer_cpu_s_per_clip_contiguous": "test CPU-s/clip",
            "infer_channels_last_speedup": "test x ch-last", "best eval batch": "best eval batch"}
    lever_meta = measured["meta"]
    display(Markdown(f"**Levers:** `{levers_path}`, {lever_meta['preset']} sizes, torch {lever_meta['torch']}, "
                     f"matmul peak {lever_meta['matmul_gflops_per_cpu_s']:.0f} GFLOP per CPU second."))
    display(lever_table[list(cols)].rename(columns=cols).round(3))
    speedups = lever_table[["train_channels_last_speedup", "infer_channels_last_speedup"]].rename(
        columns={"train_channels_last_speedup": "training step", "infer_channels_last_speedup": "test forward"})
    ax = speedups.plot.barh(figsize=(8, 0.45 * len(speedups) + 1.2))
    ax.axvline(1, color="black", linewidth=1)
    ax.set(xlabel="CPU time contiguous / channels-last (> 1: channels-last is faster)", ylabel="",
           title="Channels-last weights on the CPU, per member")
    plt.show()
else:
    display(Markdown(f"No lever measurements (`{levers_path}`): `python benchmarks/bench_levers.py --json "
                     f"{levers_path}` writes them (minutes at the demo sizes)."))

# %% [markdown]
# ## The paper preset: an estimate
#
# **Estimate, not a measurement.** Clips to process = the report's epochs (all stages) x 28,472 EPIC-55
# training segments (an EPIC-100 paper run would see 67,217 per epoch: about 2.4 times as many). Throughput:
# measured GPU training clips/s from `benchmarks/gpu.py` when its JSON is given; otherwise the assumed sustained
# rate `gpu_tflops` applied to the paper-size training FLOPs per clip (paper-size forward FLOPs x the
# training/forward ratio measured in the benchmark; EgoACO priced at its last stage for every
# stage, an upper bound).

# %%
gpu_path = Path(gpu_bench) if gpu_bench else out_dir / "gpu.json"
gpu = json.loads(gpu_path.read_text()) if gpu_path.is_file() else None
if gpu is not None:
    display(Markdown(f"**GPU benchmark:** {gpu['meta']['card']} x {gpu['meta']['gpus']}, AMP and channels-last."))
    display(pd.DataFrame(gpu["variants"]).round(2))
else:
    display(Markdown(f"No GPU benchmark JSON (`{gpu_path}`): throughput **assumed** at {gpu_tflops:g} TFLOP/s."))
estimate = efficiency.paper_estimate(result, gpu=gpu, gpu_tflops=gpu_tflops, variants=variants)
run_files.write_text(out_dir / "paper_estimate.csv", estimate.to_csv(index=False))
display(estimate.round(2))
display(Markdown(f"**Estimated total for the {len(estimate)} runs the book trains (Table 1's variants and the "
                 f"baselines): {estimate['gpu_hours'].sum():.0f} GPU-hours** (estimate)."))

# %% [markdown]
# ## Headline numbers
#
# Written to `<runs>/book/07_efficiency/summary.json` for the book's summary page.

# %%
headline = efficiency.summary(result)
run_files.write_json(out_dir / "summary.json", headline)
display(pd.DataFrame(headline).T)
