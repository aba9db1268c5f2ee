"""The variant table: every EfficientNet V1, Lite and V2 variant as one data row.

The arch tables are the papers' reference tables in timm's block-string notation
(``ir_r2_k3_s2_e6_c24_se0.25``: inverted residual, 2 repeats, kernel 3, stride 2,
expansion 6, 24 channels, squeeze-excite 0.25). Padding and BN epsilon are those
of each variant's default weights (see weights/catalogue.json).
"""

from __future__ import annotations

from .registry import BackboneSpec, register

V1_ARCH = (
    ("ds_r1_k3_s1_e1_c16_se0.25",),
    ("ir_r2_k3_s2_e6_c24_se0.25",),
    ("ir_r2_k5_s2_e6_c40_se0.25",),
    ("ir_r3_k3_s2_e6_c80_se0.25",),
    ("ir_r3_k5_s1_e6_c112_se0.25",),
    ("ir_r4_k5_s2_e6_c192_se0.25",),
    ("ir_r1_k3_s1_e6_c320_se0.25",),
)
LITE_ARCH = tuple(tuple(s.replace("_se0.25", "") for s in stage) for stage in V1_ARCH)
V2_BASE_ARCH = (
    ("cn_r1_k3_s1_e1_c16_skip",),
    ("er_r2_k3_s2_e4_c32",),
    ("er_r2_k3_s2_e4_c48",),
    ("ir_r3_k3_s2_e4_c96_se0.25",),
    ("ir_r5_k3_s1_e6_c112_se0.25",),
    ("ir_r8_k3_s2_e6_c192_se0.25",),
)
V2_S_ARCH = (
    ("cn_r2_k3_s1_e1_c24_skip",),
    ("er_r4_k3_s2_e4_c48",),
    ("er_r4_k3_s2_e4_c64",),
    ("ir_r6_k3_s2_e4_c128_se0.25",),
    ("ir_r9_k3_s1_e6_c160_se0.25",),
    ("ir_r15_k3_s2_e6_c256_se0.25",),
)
V2_M_ARCH = (
    ("cn_r3_k3_s1_e1_c24_skip",),
    ("er_r5_k3_s2_e4_c48",),
    ("er_r5_k3_s2_e4_c80",),
    ("ir_r7_k3_s2_e4_c160_se0.25",),
    ("ir_r14_k3_s1_e6_c176_se0.25",),
    ("ir_r18_k3_s2_e6_c304_se0.25",),
    ("ir_r5_k3_s1_e6_c512_se0.25",),
)
V2_L_ARCH = (
    ("cn_r4_k3_s1_e1_c32_skip",),
    ("er_r7_k3_s2_e4_c64",),
    ("er_r7_k3_s2_e4_c96",),
    ("ir_r10_k3_s2_e4_c192_se0.25",),
    ("ir_r19_k3_s1_e6_c224_se0.25",),
    ("ir_r25_k3_s2_e6_c384_se0.25",),
    ("ir_r7_k3_s1_e6_c640_se0.25",),
)
V2_XL_ARCH = (
    ("cn_r4_k3_s1_e1_c32_skip",),
    ("er_r8_k3_s2_e4_c64",),
    ("er_r8_k3_s2_e4_c96",),
    ("ir_r16_k3_s2_e4_c192_se0.25",),
    ("ir_r24_k3_s1_e6_c256_se0.25",),
    ("ir_r32_k3_s2_e6_c512_se0.25",),
    ("ir_r8_k3_s1_e6_c640_se0.25",),
)

TF = {"padding": "same", "bn_eps": 1e-3}

# V1: (suffix, width, depth, resolution, paper params in millions, TF-ported default weights)
_V1 = [
    ("b0", 1.0, 1.0, 224, 5.3, False),
    ("b1", 1.0, 1.1, 240, 7.8, False),
    ("b2", 1.1, 1.2, 260, 9.2, False),
    ("b3", 1.2, 1.4, 300, 12.0, False),
    ("b4", 1.4, 1.8, 380, 19.0, False),
    ("b5", 1.6, 2.2, 456, 30.0, False),
    ("b6", 1.8, 2.6, 528, 43.0, True),
    ("b7", 2.0, 3.1, 600, 66.0, True),
    ("b8", 2.2, 3.6, 672, 87.4, True),
    ("l2", 4.3, 5.3, 800, 480.0, True),
]
for _s, _w, _d, _r, _p, _tf in _V1:
    register(
        BackboneSpec(
            name=f"efficientnet_{_s}",
            family="v1",
            arch=V1_ARCH,
            width=_w,
            depth=_d,
            resolution=_r,
            stem_size=32,
            act="swish",
            timm_arch=("tf_" if _tf else "") + f"efficientnet_{_s}",
            paper_params_m=_p,
            aliases=(f"efficientnet-{_s}", f"tf_efficientnet_{_s}", f"efficientnet{_s}"),
            **(TF if _tf else {}),
        )
    )

_LITE = [
    ("lite0", 1.0, 1.0, 224, 4.7),
    ("lite1", 1.0, 1.1, 240, 5.4),
    ("lite2", 1.1, 1.2, 260, 6.1),
    ("lite3", 1.2, 1.4, 280, 8.2),
    ("lite4", 1.4, 1.8, 300, 13.0),
]
for _s, _w, _d, _r, _p in _LITE:
    register(
        BackboneSpec(
            name=f"efficientnet_{_s}",
            family="lite",
            arch=LITE_ARCH,
            width=_w,
            depth=_d,
            resolution=_r,
            stem_size=32,
            fix_stem=True,
            round_num_features=False,
            fix_first_last=True,
            act="relu6",
            timm_arch=f"tf_efficientnet_{_s}",
            paper_params_m=_p,
            aliases=(f"efficientnet-{_s}", f"tf_efficientnet_{_s}", f"efficientnet{_s}"),
            **TF,
        )
    )

# V2: (suffix, arch, width, depth, resolution, stem, round head channels, round limit, params)
_V2 = [
    ("s", V2_S_ARCH, 1.0, 1.0, 384, 24, True, 0.9, 21.5),
    ("m", V2_M_ARCH, 1.0, 1.0, 480, 24, False, 0.9, 54.0),
    ("l", V2_L_ARCH, 1.0, 1.0, 480, 32, False, 0.9, 120.0),
    ("xl", V2_XL_ARCH, 1.0, 1.0, 512, 32, False, 0.9, 208.0),
    ("b0", V2_BASE_ARCH, 1.0, 1.0, 224, 32, True, 0.0, 7.1),
    ("b1", V2_BASE_ARCH, 1.0, 1.1, 240, 32, True, 0.0, 8.1),
    ("b2", V2_BASE_ARCH, 1.1, 1.2, 260, 32, True, 0.0, 10.1),
    ("b3", V2_BASE_ARCH, 1.2, 1.4, 300, 32, True, 0.0, 14.4),
]
for _s, _a, _w, _d, _r, _stem, _rnf, _rl, _p in _V2:
    register(
        BackboneSpec(
            name=f"efficientnet_v2_{_s}",
            family="v2",
            arch=_a,
            width=_w,
            depth=_d,
            resolution=_r,
            stem_size=_stem,
            act="silu",
            round_num_features=_rnf,
            round_limit=_rl,
            timm_arch=f"tf_efficientnetv2_{_s}",
            paper_params_m=_p,
            aliases=(
                f"efficientnetv2_{_s}",
                f"tf_efficientnetv2_{_s}",
                f"efficientnetv2-{_s}",
                f"efficientnet_v2{_s}",
            ),
            **TF,
        )
    )
