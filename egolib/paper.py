"""The report's numbers, as data: the one place the book reads them from.

Source: Sudhakaran, Escalera, Lanz, *FBK-HUPBA submission to the EPIC-Kitchens Action Recognition 2020
Challenge* (technical report). All numbers are percentages on the EPIC-Kitchens-55 test server, RGB only;
S1 = seen kitchens, S2 = unseen kitchens. Precision and recall are the EPIC-55 class-averaged many-shot metrics.
"""

from __future__ import annotations

import pandas as pd

CITATION = "sudhakaran2020fbk"  # the report's key in references.bib

# Table 2, one row per (setting, ensemble); columns are `<metric>_<task>`, in %.
TABLE2_COLUMNS = (
    "top1_verb", "top1_noun", "top1_action",
    "top5_verb", "top5_noun", "top5_action",
    "precision_verb", "precision_noun", "precision_action",
    "recall_verb", "recall_noun", "recall_action",
)
TABLE2 = {
    ("S1", "ensemble1"): (66.98, 47.21, 37.28, 89.71, 71.05, 58.18, 57.91, 43.25, 18.84, 45.41, 43.96, 22.70),
    ("S1", "ensemble2"): (68.41, 48.76, 38.80, 90.54, 72.41, 60.41, 59.64, 44.74, 21.40, 47.45, 45.56, 23.78),
    ("S1", "ensemble3"): (68.68, 49.35, 40.00, 90.97, 72.45, 60.23, 60.63, 45.45, 21.82, 47.19, 45.84, 24.34),
    ("S2", "ensemble1"): (54.15, 31.38, 23.63, 80.81, 56.54, 41.99, 27.72, 24.43, 12.02, 23.50, 28.46, 17.71),
    ("S2", "ensemble2"): (55.96, 32.23, 24.79, 81.56, 58.83, 44.14, 32.97, 26.43, 12.84, 25.16, 29.56, 18.31),
    ("S2", "ensemble3"): (56.67, 33.90, 25.71, 81.87, 59.68, 44.42, 30.72, 27.25, 12.74, 25.09, 29.46, 17.93),
}

# The headline: the best ensemble and the best single model, action top-1 (%).
BEST_ENSEMBLE = {"name": "ensemble3", "s1": 40.00, "s2": 25.71}
BEST_SINGLE = {"method": "egoaco", "backbone": "r2p1d34", "pretrain": "ig65m_kinetics", "s1": 37.32, "s2": 23.35}


def table2() -> pd.DataFrame:
    """Table 2 in long form, one row per (setting, ensemble, task): columns ``setting, name, task, top1, top5,
    precision, recall`` (%), the layout of the book's recomputed ``table2.csv``."""
    rows = []
    for (setting, name), values in TABLE2.items():
        by_column = dict(zip(TABLE2_COLUMNS, values, strict=True))
        for task in ("verb", "noun", "action"):
            rows.append({"setting": setting, "name": name, "task": task,
                         **{metric: by_column[f"{metric}_{task}"] for metric in ("top1", "top5", "precision",
                                                                               "recall")}})
    return pd.DataFrame(rows)


def action_top1(setting: str, name: str) -> float:
    """The report's action top-1 (%) of ensemble ``name`` (``ensemble1..3``) on ``setting`` (``S1`` or ``S2``)."""
    return TABLE2[(setting.upper(), name)][TABLE2_COLUMNS.index("top1_action")]
