"""The YOLO rows the deploy checks export: tests/test_deploy.py (the light formats) and
scripts/deploy_matrix.py (the heavy ones) read this one table. Data only, no imports."""

#: row -> (variant, width, depth); b6tf: a TF-padded V1 row, scaled down
ROWS = {
    "b0": ("efficientnet_b0", 1.0, 1.0),
    "lite0": ("efficientnet_lite0", 1.0, 1.0),
    "v2b0": ("efficientnet_v2_b0", 1.0, 1.0),
    "v2s": ("efficientnet_v2_s", 1.0, 1.0),
    "b3": ("efficientnet_b3", 1.0, 1.0),
    "b6tf": ("efficientnet_b6", 0.25, 0.25),
}
#: the rows with TF "same" padding (the ones converters and simplifiers get wrong)
TF_ROWS = ["lite0", "v2b0", "v2s", "b6tf"]
