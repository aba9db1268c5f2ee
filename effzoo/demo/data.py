"""A small deterministic detection dataset in YOLO format, made on the spot.

Textured shapes (circle, square, triangle) are pasted over crops of the photos
scikit-image ships, so nothing is downloaded. The same arguments give the same
files, byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("circle", "square", "triangle")
#: scikit-image photos that ship with the package (no download)
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
)


def _photos() -> list[np.ndarray]:
    try:
        import skimage.data as sd
    except ImportError as e:  # pragma: no cover - scikit-image is in the demo and test extras
        raise ImportError(
            'the demo dataset needs scikit-image: pip install "scikit-image>=0.24"'
        ) from e
    out = []
    for name in PHOTOS:
        im = np.asarray(getattr(sd, name)())
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(im[..., :3]).astype(np.uint8))
    return out


def _background(rng: np.random.Generator, photos: list[np.ndarray], size: int) -> np.ndarray:
    from PIL import Image

    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(photo[y : y + side, x : x + side])
    return np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.float32)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Two colours in stripes, checks or blobs, so the class is the shape, not the paint."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    kind = int(rng.integers(3))
    period = float(rng.uniform(4, 12))
    if kind == 0:
        angle = float(rng.uniform(0, np.pi))
        mask = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0
    elif kind == 1:
        mask = ((xx // period).astype(int) + (yy // period).astype(int)) % 2 == 0
    else:
        mask = rng.random((size // 4 + 1, size // 4 + 1)) > 0.5
        mask = np.kron(mask, np.ones((4, 4), dtype=bool))[:size, :size]
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return np.where(mask[..., None], a, b).astype(np.float32)


def _shape_mask(cls: int, size: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(im)
    if cls == 0:
        draw.ellipse((0, 0, size - 1, size - 1), fill=255)
    elif cls == 1:
        draw.rectangle((0, 0, size - 1, size - 1), fill=255)
    else:
        apex = float(rng.uniform(0.2, 0.8)) * (size - 1)
        draw.polygon([(apex, 0), (0, size - 1), (size - 1, size - 1)], fill=255)
    return np.asarray(im, dtype=np.float32)[..., None] / 255.0


def _iou(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    (ax, ay, asz), (bx, by, bsz) = a, b
    iw = max(0, min(ax + asz, bx + bsz) - max(ax, bx))
    ih = max(0, min(ay + asz, by + bsz) - max(ay, by))
    inter = iw * ih
    return inter / (asz * asz + bsz * bsz - inter)


def _side_range(size: int, side: tuple[int, int] | None) -> tuple[int, int]:
    """The shapes' side in pixels, both ends included: 20-45 % of the image by default."""
    if side is None:
        return int(size * 0.2), int(size * 0.45)
    lo, hi = (int(v) for v in side)
    if not 1 <= lo <= hi <= size:
        raise ValueError(f"side={side!r}: need 1 <= lo <= hi <= imgsz ({size}) pixels")
    return lo, hi


def make_image(
    rng: np.random.Generator,
    photos: list[np.ndarray],
    size: int,
    max_objects: int = 3,
    *,
    side: tuple[int, int] | None = None,
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One image (HxWx3 uint8) and its YOLO labels (class, cx, cy, w, h normalized);
    ``side`` (lo, hi): the shapes' side in pixels (default 20-45 % of ``size``)."""
    lo, hi = _side_range(size, side)
    img = _background(rng, photos, size)
    boxes: list[tuple[int, int, int]] = []
    labels = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            s = int(rng.integers(lo, hi + 1))
            x, y = int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))
            if all(_iou((x, y, s), b) < 0.2 for b in boxes):
                break
        else:
            continue
        cls = int(rng.integers(len(CLASSES)))
        mask = _shape_mask(cls, s, rng)
        patch = img[y : y + s, x : x + s]
        img[y : y + s, x : x + s] = mask * _texture(rng, s) + (1 - mask) * patch
        boxes.append((x, y, s))
        c = (x + s / 2) / size, (y + s / 2) / size
        labels.append((cls, c[0], c[1], s / size, s / size))
    return np.clip(img, 0, 255).astype(np.uint8), labels


def make_shapes_dataset(
    root: str | Path,
    *,
    n_train: int = 96,
    n_val: int = 32,
    imgsz: int = 160,
    seed: int = 0,
    side: tuple[int, int] | None = None,
) -> Path:
    """Write ``root/images/{train,val}``, ``root/labels/...`` and ``root/data.yaml``;
    return the path of ``data.yaml``. ``side=(lo, hi)``: every shape's side in pixels,
    both ends included (small objects, e.g. ``(4, 12)`` at ``imgsz=160``); the default,
    20-45 % of ``imgsz``, is the demo's data."""
    from PIL import Image

    _side_range(imgsz, side)  # checked before anything is written
    root = Path(root).resolve()
    photos = _photos()
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, labels = make_image(rng, photos, imgsz, side=side)
            stem = f"{split}_{i:04d}"
            Image.fromarray(img).save(root / "images" / split / f"{stem}.png", optimize=False)
            lines = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    data = root / "data.yaml"
    sides = "" if side is None else f", sides {side[0]}-{side[1]} px"
    data.write_text(
        f"# effzoo demo: textured shapes over scikit-image photos (seed {seed}{sides})\n"
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    )
    return data
