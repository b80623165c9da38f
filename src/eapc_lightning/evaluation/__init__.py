"""``eapc evaluate``: the whole pipeline on a test split, scored as the paper's Table 1 (section 4.2)."""
