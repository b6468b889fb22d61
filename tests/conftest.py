"""Test-session settings: one intra-op thread (the models under test are tiny; oneDNN's thread start-up
costs more than it saves, and the results do not depend on it), headless matplotlib."""

import os

import torch

os.environ.setdefault("MPLBACKEND", "agg")
torch.set_num_threads(1)
