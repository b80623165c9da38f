"""Procedural appearance of a synthetic speaker: what makes two speakers look like different people.

:func:`paint_appearance` changes a framed face photograph (see :func:`eapc_lightning.synth.face.render_identity`)
once per speaker, before it is warped frame by frame, so it costs nothing per frame. It keeps the
photograph's face (eyes, nose, mouth, the skin's shading and texture) and its clothes, and replaces or
paints the rest from an :class:`Appearance`:

* skin tone (a Lab transfer of the face and neck skin, its shading kept),
* background (plain, gradient, mottled studio backdrop or blurred room),
* hair (style: short, crop, receding, side part, bob, long; colour, hairline height, volume; strand
  texture), ears where the hair leaves them free, and a synthesised forehead above the photograph's own,
* eyebrows (thicker and darker, painted along the brow landmarks),
* facial hair (stubble, moustache, goatee, full beard; strand texture, lips kept free),
* glasses, wrinkles (forehead lines, crow's feet, nasolabial folds), and the clothes' colour.

Shapes are laid out in the face-aligned frame of :class:`eapc_lightning.landmarks.mesh_warp.FaceFrame`
(``u`` along the eyes, ``v`` down, in units of the inter-ocular distance ``D``, origin on the nose), from
the photograph's 68 landmarks, so they scale with the frame size. Everything random is drawn from the
appearance's own ``texture_seed``: an appearance always paints the same image.
"""

from dataclasses import dataclass, replace

import cv2
import numpy as np

from eapc_lightning.landmarks.mesh_warp import FaceFrame

HAIR_STYLES = ("short", "crop", "receding", "side", "bob", "long")
MALE_HAIR_STYLES = ("short", "crop", "receding", "side")
FEMALE_HAIR_STYLES = ("bob", "long", "side")
FACIAL_HAIR = ("none", "stubble", "moustache", "goatee", "beard")
BACKGROUNDS = ("plain", "gradient", "mottled", "room")
GLASSES = ("none", "round", "rect")

# Hair colours (RGB, 0-255): black, chestnut brown, auburn, golden blonde, grey, white.
HAIR_COLOURS = (
    (28, 24, 23),
    (92, 62, 40),
    (122, 54, 30),
    (196, 160, 100),
    (128, 126, 124),
    (212, 209, 204),
)
# Skin tones as the mean Lab colour of the cheeks (L 0-100, a and b as in CIELAB), dark to light.
SKIN_TONES = (
    (34.0, 14.0, 18.0),
    (44.0, 16.0, 23.0),
    (54.0, 15.0, 24.0),
    (62.0, 14.0, 22.0),
    (69.0, 13.0, 19.0),
    (75.0, 11.0, 16.0),
)

# How far up the forehead each photograph shows skin (D above the brows' mean, on the image-left and
# image-right side of the unmirrored photograph): its own hair (astronaut) or hat (hopper) begins there;
# skin above it is synthesised. And whether the photograph shows a neck (the astronaut wears a
# turtleneck up to the chin: her neck and clothes are painted; the hopper photograph's are recoloured).
PHOTO_FOREHEAD = {"astronaut": (0.17, 0.1), "hopper": (0.25, 0.25)}
PHOTO_NECK = {"astronaut": False, "hopper": True}
BEARD_INSET = 0.06  # D inside the jaw line
BEARD_FADE = 0.04  # D
BEARD_CONTRAST = 22.0  # the most a beard may darken the skin (Lab lightness); see _facial_hair
BEARD_MIN_CONTRAST = 30.0  # facial hair is at least this much darker than the skin
BROW_MIN_CONTRAST = 25.0  # and so are the brows
BROW_ABOVE = 0.5  # share of a painted brow above its landmarks


@dataclass(frozen=True)
class Appearance:
    """What is painted over a speaker's photograph; the defaults change nothing.

    ``hair`` is one of :data:`HAIR_STYLES` or ``"photo"`` (keep the photograph's hair and background).
    ``hairline``: height of the hairline above the brows (D); ``hair_volume``: extra size of the hair
    around the skull (D). Colours are RGB 0-255, ``skin`` and ``clothes`` mean Lab colours (None: keep).
    ``brow_thickness`` (D; 0 keeps the photograph's brows). ``facial_hair`` one of :data:`FACIAL_HAIR`
    with ``facial_hair_density`` 0-1. ``glasses`` one of :data:`GLASSES`. ``wrinkles`` 0-1 adds
    lines, ``smooth`` 0-1 smooths the photograph's own (an edge-preserving filter over the face).
    """

    texture_seed: int = 0
    skin: tuple[float, float, float] | None = None
    hair: str = "photo"
    hair_rgb: tuple[float, float, float] = (58.0, 40.0, 30.0)
    hairline: float = 0.6
    hair_volume: float = 0.1
    background: str = "photo"
    background_rgb: tuple[float, float, float] = (120.0, 120.0, 120.0)
    background_rgb2: tuple[float, float, float] = (80.0, 80.0, 80.0)
    clothes: tuple[float, float, float] | None = None
    brow_thickness: float = 0.0
    brow_rgb: tuple[float, float, float] = (40.0, 30.0, 25.0)
    facial_hair: str = "none"
    facial_hair_density: float = 0.0
    facial_hair_rgb: tuple[float, float, float] = (40.0, 30.0, 25.0)
    glasses: str = "none"
    glasses_rgb: tuple[float, float, float] = (30.0, 30.0, 30.0)
    wrinkles: float = 0.0
    smooth: float = 0.0


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(rgb, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2Lab)


def _to_rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


def _blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def _noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Smooth noise of unit standard deviation with features about ``cell`` pixels across."""
    height, width = shape
    small = (max(int(np.ceil(height / cell)) + 3, 2), max(int(np.ceil(width / cell)) + 3, 2))
    field = rng.standard_normal(small).astype(np.float32)
    big = cv2.resize(field, (int(small[1] * cell), int(small[0] * cell)), interpolation=cv2.INTER_CUBIC)
    big = big[:height, :width]
    return (big - big.mean()) / (big.std() + 1e-6)


def _fill(shape: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    fixed = [np.round(np.asarray(polygon) * 16).astype(np.int32) for polygon in polygons]
    cv2.fillPoly(mask, fixed, 255, cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255.0


def _over(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    alpha = alpha[..., None]
    return image * (1.0 - alpha) + colour * alpha


class _Face:
    """The photograph's face geometry in face-local coordinates, with a per-pixel (u, v) grid."""

    def __init__(self, points: np.ndarray, size: int):
        self.points = points
        self.size = size
        self.frame = FaceFrame.of(points)
        self.local = self.frame.to_local(points)
        self.unit = self.frame.unit
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        grid = self.frame.to_local(np.stack([xs, ys], axis=-1))
        self.u = grid[..., 0].astype(np.float32)
        self.v = grid[..., 1].astype(np.float32)
        self.brow_v = float(self.local[17:27, 1].mean())
        self.half_width = float((self.local[16, 0] - self.local[0, 0]) / 2)
        self.chin_v = float(self.local[8, 1])

    def image(self, local: np.ndarray) -> np.ndarray:
        """Face-local (u, v) points -> image pixels."""
        return self.frame.origin + self.frame.to_image(np.asarray(local, np.float64))

    def px(self, d: float) -> float:
        """A length in D as pixels."""
        return d * self.unit

    def face_polygon(self, top: float) -> np.ndarray:
        """The jaw line closed by an elliptical arc through the forehead ``top`` D above the brows."""
        jaw = self.local[0:17]
        start, end = jaw[16], jaw[0]
        centre_v = (start[1] + end[1]) / 2
        height = centre_v - (self.brow_v - top)
        angles = np.linspace(0.0, np.pi, 25)[1:-1]
        arc = np.stack([np.cos(angles) * self.half_width, centre_v - np.sin(angles) * height], axis=-1)
        return self.image(np.concatenate([jaw, arc]))


def _eyes_mask(face: _Face, margin: float) -> np.ndarray:
    polygons = []
    for eye in (range(36, 42), range(42, 48)):
        local = face.local[list(eye)]
        centre = local.mean(axis=0)
        polygons.append(face.image(centre + (local - centre) * (1.0 + margin)))
    return _fill((face.size, face.size), polygons)


def _body_polygon(face: _Face) -> np.ndarray:
    """Below the jaw: neck and shoulders, down past the bottom of the frame."""
    jaw = face.local[3:14]
    w = face.half_width
    bottom = face.chin_v
    right = [
        (0.74 * w, bottom + 0.25),
        (0.80 * w, bottom + 0.45),
        (1.45 * w, bottom + 0.62),
        (2.4 * w, bottom + 0.85),
        (2.6 * w, bottom + 2.0),
    ]
    left = [(-u, v) for u, v in right[::-1]]
    return face.image(np.concatenate([jaw, np.array(right), np.array(left)]))


def _line_kernel(length: int, angle: float) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    centre = (length - 1) / 2
    dx, dy = np.cos(angle) * centre, np.sin(angle) * centre
    a = (int(round((centre - dx) * 16)), int(round((centre - dy) * 16)))
    b = (int(round((centre + dx) * 16)), int(round((centre + dy) * 16)))
    cv2.line(kernel, a, b, 1.0, 1, cv2.LINE_AA, 4)
    return kernel / kernel.sum()


def _streaks(rng: np.random.Generator, face: "_Face", flow, length: float) -> np.ndarray:
    """Hair-like texture of unit standard deviation: white noise smeared along the local direction
    ``flow(u, v) -> (du, dv)`` (face-local) over ``length`` D."""
    shape = face.u.shape
    du, dv = flow(face.u, face.v)
    x = du * face.frame.u[0] + dv * face.frame.v[0]
    y = du * face.frame.u[1] + dv * face.frame.v[1]
    angle = np.mod(np.arctan2(y, x), np.pi)
    bins = 8
    position = angle / (np.pi / bins)
    low = np.floor(position).astype(np.int64) % bins
    high = (low + 1) % bins
    frac = (position - np.floor(position)).astype(np.float32)
    noise = rng.standard_normal(shape).astype(np.float32)
    size = max(int(round(face.px(length))) | 1, 3)
    smeared = np.stack([cv2.filter2D(noise, -1, _line_kernel(size, k * np.pi / bins)) for k in range(bins)])
    rows, cols = np.indices(shape)
    out = smeared[low, rows, cols] * (1 - frac) + smeared[high, rows, cols] * frac
    return (out - out.mean()) / (out.std() + 1e-6)


def _background(rng: np.random.Generator, appearance: Appearance, size: int) -> np.ndarray:
    top = np.asarray(appearance.background_rgb, np.float32) / 255.0
    bottom = np.asarray(appearance.background_rgb2, np.float32) / 255.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = appearance.background
    if kind == "plain":
        weight = np.zeros_like(ys)
    elif kind == "gradient":
        weight = ys
    elif kind == "mottled":
        weight = np.clip(
            0.5 + 0.35 * _noise(rng, (size, size), size / 4) + 0.1 * _noise(rng, (size, size), size / 14),
            0,
            1,
        )
    else:  # room: soft shapes of a few colours, out of focus
        canvas = np.empty((size, size, 3), np.float32)
        canvas[:] = top
        for _ in range(9):
            colour = np.clip(
                (top if rng.random() < 0.5 else bottom) * rng.uniform(0.6, 1.4) + rng.normal(0, 0.05, 3), 0, 1
            )
            x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
            w, h = rng.uniform(0.15, 0.6, 2) * size
            cv2.rectangle(canvas, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour.tolist(), -1)
        canvas = cv2.GaussianBlur(canvas, (0, 0), size / 25)
        vignette = 1.0 - 0.25 * ((xs - 0.5) ** 2 + (ys - 0.45) ** 2)
        return canvas * vignette[..., None]
    colour = top * (1.0 - weight[..., None]) + bottom * weight[..., None]
    vignette = 1.0 - 0.35 * ((xs - 0.5) ** 2 + (ys - 0.4) ** 2)
    return colour * vignette[..., None]


def _hair_region(
    face: _Face, appearance: Appearance, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The hair mask (soft) and the mask of the face below the hairline."""
    u, v = face.u, face.v
    style = appearance.hair
    w = face.half_width
    volume = appearance.hair_volume
    wobble = 0.04 * _noise(rng, u.shape, face.px(0.5))
    # hairline: height above the brows, lower towards the temples
    hairline = face.brow_v - appearance.hairline + 0.3 * u**2 + wobble
    if style == "receding":
        hairline -= 0.3 * np.exp(-(((np.abs(u) - 0.5) / 0.22) ** 2))
    if style == "side":  # a side parting: the hairline higher on one side
        hairline -= 0.08 * np.tanh(u / 0.3)
    centre_v = face.brow_v + 0.1
    skull_a = w + 0.14 + volume
    skull_b = 1.5 + volume * 1.2
    skull = (u / skull_a) ** 2 + ((v - centre_v) / skull_b) ** 2 < 1.0
    side_bottom = {"short": -0.25, "crop": -0.35, "receding": -0.3, "side": -0.15, "bob": 0.75, "long": 9.0}[
        style
    ]
    behind = np.clip(np.abs(u) - (w + 0.16), 0, None)
    region = skull & (v < side_bottom + 3.0 * behind + wobble * 2)
    if style in ("bob", "long"):
        # hanging hair: follows the skull outwards, then falls straight and a little inwards at the ends
        reach = skull_a + 0.04 - 0.12 * np.clip((v - side_bottom + 0.5) / 0.5, 0, 1) ** 2
        hang = (np.abs(u) < reach + wobble) & (
            v < side_bottom + wobble * 3 - 0.08 * (np.abs(u) / skull_a) ** 2
        )
        neck = (v > face.local[4, 1]) & (np.abs(u) < 0.8 * w)  # the hair falls beside the neck
        region |= hang & (v > centre_v - 0.5) & ~neck

    # the temples: hair down the sides of the forehead to about the brows' outer ends
    hairline = hairline + 0.9 * np.clip(np.abs(u) - 0.78, 0, None)
    face_skin = (v > hairline) & (_fill(u.shape, [face.face_polygon(1.5)]) > 0.5)
    region &= ~face_skin
    if style in ("short", "crop", "receding", "side"):  # sideburns in front of the ears
        burn = (np.abs(u) > w - 0.1) & (np.abs(u) < w + 0.06) & (v < 0.05 + wobble) & (v > face.brow_v - 0.4)
        region |= burn
    return _blur(region.astype(np.float32), face.px(0.02)), face_skin


def _ears(face: _Face, skin_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ears beside the face at eye-to-nose height: (colour, alpha)."""
    size = face.size
    colour = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    for side in (-1.0, 1.0):
        jaw = face.local[1] if side < 0 else face.local[15]
        base_u = side * (abs(jaw[0]) - 0.04)
        outline = np.array(
            [
                (0.0, -0.62),
                (0.12, -0.66),
                (0.2, -0.55),
                (0.22, -0.3),
                (0.17, -0.05),
                (0.1, 0.1),
                (0.02, 0.12),
                (0.0, 0.0),
            ]
        )
        shape = np.stack([base_u + side * outline[:, 0], outline[:, 1]], axis=-1)
        ear = _fill((size, size), [face.image(shape)])
        inner = np.stack([base_u + side * (0.4 * outline[:, 0] + 0.05), 0.7 * outline[:, 1] - 0.1], axis=-1)
        shade = _blur(_fill((size, size), [face.image(inner)]), face.px(0.03))
        tone = skin_rgb * (0.92 - 0.25 * shade[..., None])
        colour = colour * (1 - ear[..., None]) + tone * ear[..., None]
        alpha = np.maximum(alpha, ear)
    return colour, _blur(alpha, face.px(0.01))


def _brows(image: np.ndarray, face: _Face, appearance: Appearance, rng: np.random.Generator) -> np.ndarray:
    thickness = appearance.brow_thickness
    polygons = []
    profile = np.array([0.5, 0.85, 1.0, 1.0, 0.9])
    for brow in (list(range(17, 22)), list(range(26, 21, -1))):  # outer -> inner on both sides
        local = face.local[brow]
        upper = local + np.stack([np.zeros(5), -BROW_ABOVE * thickness * profile], axis=-1)
        lower = local + np.stack([np.zeros(5), (1.0 - BROW_ABOVE) * thickness * profile], axis=-1)
        polygons.append(face.image(np.concatenate([upper, lower[::-1]])))
    mask = _blur(_fill(image.shape[:2], polygons), face.px(0.015))
    streaks = _streaks(rng, face, lambda u, v: (np.sign(u), -0.4 + 0 * v), 0.07)
    colour = _darker_than_skin(
        np.asarray(appearance.brow_rgb, np.float32) / 255.0, image, face, BROW_MIN_CONTRAST
    )
    texture = colour[None, None] * (1.0 + 0.3 * streaks)[..., None]
    alpha = np.clip(mask * (0.8 + 0.25 * streaks), 0, 0.92)
    return _over(image, texture, alpha)


def _darker_than_skin(colour: np.ndarray, image: np.ndarray, face: _Face, contrast: float) -> np.ndarray:
    """``colour`` (RGB 0-1), darkened where needed to at least ``contrast`` Lab lightness below the
    cheeks of ``image``: facial hair or brows as light as the skin would not show (and MediaPipe would
    take a fringe above them for the brows)."""
    skin_lightness = float(_cheek_lab(_to_lab(image), face)[0])
    lab = _to_lab(colour[None, None])[0, 0]
    if lab[0] > skin_lightness - contrast:
        lab[0] = max(skin_lightness - contrast, 8.0)
        return _to_rgb(lab[None, None])[0, 0]
    return colour


def _facial_hair(
    image: np.ndarray, face: _Face, appearance: Appearance, rng: np.random.Generator
) -> np.ndarray:
    style = appearance.facial_hair
    if style == "moustache":  # with a shadow of stubble, or it reads as a woman's lip
        stubble = replace(
            appearance, facial_hair="stubble", facial_hair_density=0.5 * appearance.facial_hair_density
        )
        image = _facial_hair(image, face, stubble, rng)
    size = face.size
    local = face.local
    shape = (size, size)
    lips = local[48:60]
    lip_centre = lips.mean(axis=0)
    lips_mask = _blur(
        _fill(shape, [face.image(lip_centre + (lips - lip_centre) * [1.12, 1.3])]), face.px(0.02)
    )
    # moustache: between the nostrils and the upper lip, out past the mouth corners
    nose = local[[31, 32, 33, 34, 35]] + [0.0, 0.06]
    upper_lip = local[[54, 53, 52, 51, 50, 49, 48]] + [0.0, -0.035]
    moustache = _fill(
        shape,
        [
            face.image(
                np.concatenate([[local[48] + [-0.08, 0.1]], nose, [local[54] + [0.08, 0.1]], upper_lip])
            )
        ],
    )
    chin = _fill(
        shape,
        [
            face.image(
                np.concatenate(
                    [local[[59, 58, 57, 56, 55]] + [0, 0.16], local[[11, 10, 9, 8, 7, 6, 5]] + [0, 0.04]]
                )
            )
        ],
    )
    # the beard stops short of the jaw line, fading out, so that the face keeps its outline
    jaw = local[1:16].copy()
    jaw = jaw - BEARD_INSET * (jaw - [0.0, 0.1]) / np.linalg.norm(jaw - [0.0, 0.1], axis=1, keepdims=True)
    w = face.half_width
    cheek_line = np.array(
        [(0.97 * w, -0.05), (0.75 * w, 0.1), (0.55, 0.2), (-0.55, 0.2), (-0.75 * w, 0.1), (-0.97 * w, -0.05)]
    )
    full = _fill(shape, [face.image(np.concatenate([jaw, cheek_line]))])
    region = {
        "stubble": np.maximum(full, moustache),
        "moustache": moustache,
        "goatee": np.maximum(chin, moustache),
        "beard": np.maximum(full, moustache),
    }[style]
    region = _blur(region, face.px(BEARD_FADE)) * (1.0 - lips_mask)
    colour = np.asarray(appearance.facial_hair_rgb, np.float32) / 255.0
    # MediaPipe loses the jaw and chin under a dense beard much darker than the skin (its face shrinks to
    # the beard's upper edge): the darkening is capped at BEARD_CONTRAST lightness units
    skin_lightness = float(_cheek_lab(_to_lab(image), face)[0])
    colour = _darker_than_skin(colour, image, face, BEARD_MIN_CONTRAST)
    beard_lightness = float(_to_lab(colour[None, None])[0, 0, 0])
    cap = BEARD_CONTRAST / max(skin_lightness - beard_lightness, 1.0)
    density = appearance.facial_hair_density * (
        1.0 if style == "moustache" else float(np.clip(cap, 0.2, 1.0))
    )
    patchy = np.clip(1.0 + 0.25 * _noise(rng, shape, face.px(0.15)), 0.5, 1.3)
    if style == "stubble":
        specks = _blur(np.clip(rng.random(shape).astype(np.float32) * 2.2 - 1.2, 0, 1), 0.45)
        shadow = 0.5 * colour + 0.5 * np.array([0.2, 0.21, 0.24], np.float32)
        out = _over(image, shadow[None, None] * np.ones_like(image), 0.4 * density * region * patchy)
        return _over(
            out, colour[None, None] * np.ones_like(image), np.clip(1.0 * density * region * specks, 0, 0.8)
        )
    streaks = _streaks(rng, face, lambda u, v: (0.3 * u, 1.0 + 0 * v), 0.09)
    texture = colour[None, None] * np.clip(1.0 + 0.32 * streaks, 0.3, 1.8)[..., None]
    alpha = np.clip(region * density * patchy * (0.85 + 0.2 * streaks), 0, 1)
    return _over(image, texture, alpha)


def _glasses(image: np.ndarray, face: _Face, appearance: Appearance) -> np.ndarray:
    size = face.size
    local = face.local
    frame_mask = np.zeros((size, size), np.uint8)
    lens_mask = np.zeros((size, size), np.uint8)
    thickness = max(int(round(face.px(0.035))), 1)
    rims = []
    for eye, side in ((range(36, 42), -1.0), (range(42, 48), 1.0)):
        centre = local[list(eye)].mean(axis=0) + [0.0, 0.04]
        angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        if appearance.glasses == "round":
            outline = np.stack([0.31 * np.cos(angles), 0.28 * np.sin(angles)], axis=-1)
        else:  # rounded rectangle (superellipse)
            c, s = np.cos(angles), np.sin(angles)
            outline = np.stack(
                [0.38 * np.sign(c) * np.abs(c) ** 0.4, 0.24 * np.sign(s) * np.abs(s) ** 0.4], axis=-1
            )
        rim = centre + outline
        rims.append(rim)
        pixels = np.round(face.image(rim) * 16).astype(np.int32)
        cv2.fillPoly(lens_mask, [pixels], 255, cv2.LINE_AA, 4)
        cv2.polylines(frame_mask, [pixels], True, 255, thickness, cv2.LINE_AA, 4)
        outer = rim[np.argmax(side * rim[:, 0])]
        temple = np.array([outer, [side * (face.half_width + 0.05), outer[1] - 0.02]])
        cv2.polylines(
            frame_mask,
            [np.round(face.image(temple) * 16).astype(np.int32)],
            False,
            255,
            thickness,
            cv2.LINE_AA,
            4,
        )
    inner = [rims[0][np.argmax(rims[0][:, 0])], rims[1][np.argmin(rims[1][:, 0])]]
    bridge = np.array([inner[0], (inner[0] + inner[1]) / 2 + [0.0, -0.06], inner[1]])
    cv2.polylines(
        frame_mask,
        [np.round(face.image(bridge) * 16).astype(np.int32)],
        False,
        255,
        thickness,
        cv2.LINE_AA,
        4,
    )
    lens = lens_mask.astype(np.float32) / 255.0
    out = image * (1.0 - 0.08 * lens[..., None]) + 0.03 * lens[..., None]
    colour = np.asarray(appearance.glasses_rgb, np.float32) / 255.0
    return _over(out, colour[None, None] * np.ones_like(image), frame_mask.astype(np.float32) / 255.0)


def _wrinkles(image: np.ndarray, face: _Face, amount: float, rng: np.random.Generator) -> np.ndarray:
    size = face.size
    lines = []
    brow = face.brow_v
    for row in range(3):
        v0 = brow - 0.2 - 0.11 * row
        us = np.linspace(-0.45, 0.45, 9)
        lines.append(np.stack([us, v0 - 0.05 * np.cos(us * 2.5) + rng.normal(0, 0.01, 9)], axis=-1))
    for side in (-1.0, 1.0):
        corner = face.local[36] if side < 0 else face.local[45]
        for k in range(3):
            angle = np.deg2rad(-25 + 25 * k)
            tip = corner + side * np.array([0.16 * np.cos(angle), 0.0]) + [0.0, 0.16 * np.sin(angle)]
            lines.append(np.array([corner + [side * 0.04, 0.0], tip]))
        wing = face.local[31] if side < 0 else face.local[35]
        mouth = face.local[48] if side < 0 else face.local[54]
        lines.append(
            np.array(
                [
                    wing + [side * 0.03, -0.02],
                    wing + [side * 0.1, 0.12],
                    mouth + [side * 0.1, 0.08],
                    mouth + [side * 0.08, 0.25],
                ]
            )
        )
        eye = face.local[36:42] if side < 0 else face.local[42:48]
        low = eye[[5, 4]] if side < 0 else eye[[5, 4]]
        lines.append(
            np.array([low[0] + [-0.05, 0.1], (low[0] + low[1]) / 2 + [0, 0.14], low[1] + [0.05, 0.1]])
        )
    dark = np.zeros((size, size), np.float32)
    light = np.zeros((size, size), np.float32)
    thickness = max(int(round(face.px(0.015))), 1)
    for line in lines:
        pixels = face.image(line)
        cv2.polylines(dark, [np.round(pixels * 16).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA, 4)
        cv2.polylines(
            light,
            [np.round((pixels + [0, 1.2]) * 16).astype(np.int32)],
            False,
            1.0,
            thickness,
            cv2.LINE_AA,
            4,
        )
    dark = _blur(dark, face.px(0.012))
    light = _blur(light, face.px(0.015))
    return np.clip(image * (1.0 - 0.3 * amount * dark[..., None]) + 0.05 * amount * light[..., None], 0, 1)


def _raise_forehead(
    image: np.ndarray, face: _Face, keep_sides: tuple[float, float], height: float
) -> np.ndarray:
    """Skin up to ``height`` D above the brows where the photograph shows it only up to ``keep_sides``
    D (image left, image right). Above the photograph's own skin, each column takes the colour of the
    skin just below (its shading across the forehead kept), fading in a faint highlight and skin grain."""
    left, right = keep_sides
    keep = left + (right - left) * np.clip((face.u + 0.3) / 0.8, 0, 1)
    rise = face.brow_v - face.v  # D above the brows
    lab = _to_lab(image)
    reference = _cheek_lab(lab, face)
    likeness = _skin_weight(lab, face, reference) * np.clip(
        1.0 - (np.abs(lab[..., 0] - reference[0]) - 15.0) / 10.0, 0, 1
    )
    band = ((rise > keep - 0.08) & (rise < keep - 0.02)).astype(np.float32) * likeness
    band = np.where(np.abs(face.u) < face.half_width - 0.1, band, 0).astype(np.float32)
    wide, tall = face.px(0.12), face.px(0.6)
    support = cv2.GaussianBlur(band, (0, 0), wide, sigmaY=tall)[..., None] + 1e-4
    fill = cv2.GaussianBlur(image * band[..., None], (0, 0), wide, sigmaY=tall) / support
    highlight = 0.04 * np.exp(-((face.u / 0.45) ** 2 + ((rise - keep - 0.25) / 0.25) ** 2))
    grain = 0.015 * _noise(np.random.default_rng(0), face.u.shape, 1.5)
    fill = fill * (1.0 + grain[..., None]) + highlight[..., None]
    weight = np.clip((rise - keep + 0.04) / 0.05, 0, 1) * (rise < height + 0.3)
    weight = weight[..., None]
    return image * (1 - weight) + fill * weight


def _paint_body(
    image: np.ndarray, face: _Face, appearance: Appearance, rng: np.random.Generator, body: np.ndarray
) -> np.ndarray:
    """A neck (the cheeks' skin colour, shaded under the jaw) and a crew-neck shirt inside ``body``."""
    u, v, w = face.u, face.v, face.half_width
    chin = face.chin_v
    skin_rgb = _to_rgb(_cheek_lab(_to_lab(image), face)[None, None])[0, 0]
    neckline = chin + 0.28 + 0.22 * np.clip(1.0 - (u / (0.62 * w)) ** 2, 0, 1)
    shirt = _blur(
        (v > neckline + 0.02 * _noise(rng, u.shape, face.px(0.2))).astype(np.float32), face.px(0.012)
    )
    jaw_v = np.interp(u, face.local[4:13, 0], face.local[4:13, 1])
    below_jaw = np.clip(v - jaw_v, 0, None)
    neck_shade = (0.55 + 0.35 * np.clip(below_jaw / 0.35, 0, 1)) * (
        1.0 - 0.3 * np.clip(np.abs(u) / (0.7 * w), 0, 1) ** 2
    )
    neck = skin_rgb[None, None] * neck_shade[..., None]
    clothes_lab = np.asarray(
        appearance.clothes if appearance.clothes is not None else (35.0, 0.0, 0.0), np.float32
    )
    cloth_rgb = _to_rgb(clothes_lab[None, None])[0, 0]
    folds = (
        1.0
        + 0.05 * _noise(rng, u.shape, face.px(0.25))
        + 0.015 * rng.standard_normal(u.shape).astype(np.float32)
    )
    cloth_shade = (0.8 + 0.2 * np.clip(1.0 - (u / 2.2) ** 2, 0, 1)) * folds
    collar = np.exp(-(((v - neckline - 0.04) / 0.03) ** 2)) * 0.15
    cloth = cloth_rgb[None, None] * (cloth_shade - collar)[..., None]
    painted = _over(neck, cloth, shirt)
    return _over(image, painted, body)


def _skin_weight(lab: np.ndarray, face: _Face, cheek_lab: np.ndarray) -> np.ndarray:
    """Soft skin mask: hue close to the cheeks' and enough chroma (separates neck skin from clothes)."""
    hue = np.arctan2(lab[..., 2], lab[..., 1])
    cheek_hue = np.arctan2(cheek_lab[2], cheek_lab[1])
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    cheek_chroma = float(np.hypot(cheek_lab[1], cheek_lab[2]))
    near = np.clip(1.0 - (np.abs(np.angle(np.exp(1j * (hue - cheek_hue)))) - 0.35) / 0.3, 0, 1)
    rich = np.clip((chroma / cheek_chroma - 0.3) / 0.25, 0, 1)
    return _blur((near * rich).astype(np.float32), face.px(0.02))


def _cheek_lab(lab: np.ndarray, face: _Face) -> np.ndarray:
    cheeks = np.zeros(face.u.shape, bool)
    for side in (-1.0, 1.0):
        cheeks |= ((face.u - side * 0.55) / 0.16) ** 2 + ((face.v - 0.22) / 0.12) ** 2 < 1.0
    return np.median(lab[cheeks], axis=0)


def _hair(
    image: np.ndarray,
    face: _Face,
    appearance: Appearance,
    rng: np.random.Generator,
    person: np.ndarray,
    hair: np.ndarray,
) -> np.ndarray:
    """Background, ears and hair around the ``person`` mask (face below the hairline, neck, clothes)."""
    size = face.size
    out = _over(_background(rng, appearance, size), image, person)
    if appearance.hair in MALE_HAIR_STYLES:
        skin_rgb = _to_rgb(_cheek_lab(_to_lab(image), face)[None, None])[0, 0]
        ear_rgb, ear_alpha = _ears(face, skin_rgb)
        out = _over(out, ear_rgb, ear_alpha * (1.0 - person))
    colour = np.asarray(appearance.hair_rgb, np.float32) / 255.0
    long = appearance.hair in ("bob", "long")
    curl = 0.5 if appearance.hair in ("short", "crop") else 0.25

    def flow(u, v):
        return (
            (curl * u + 0.2 * np.sign(u) * (v > face.brow_v), 1.0 + 0 * v)
            if long
            else (curl * u, 1.0 + 0 * v)
        )

    fine = _streaks(rng, face, flow, 0.12 if long else 0.07)
    locks = _blur(_streaks(rng, face, flow, 0.5 if long else 0.25), face.px(0.03))
    locks = locks / (locks.std() + 1e-6)
    lightness = 0.5 * (colour.max() + colour.min())
    shade = 0.78 + 0.22 * np.clip(
        1.0 - ((face.u / 1.6) ** 2 + ((face.v - face.brow_v + 1.0) / 1.5) ** 2), 0, 1
    )
    shade = shade * (1.0 + 0.06 * _noise(rng, face.u.shape, face.px(0.4)))
    contrast = 1.0 - 0.45 * lightness  # light hair shows its strands less
    texture = colour[None, None] * (shade * (1.0 + contrast * (0.08 * fine + 0.15 * locks)))[..., None]
    sheen = np.clip(_noise(rng, face.u.shape, face.px(0.35)) * 0.5 + 0.3 * locks, 0, None)
    texture = texture + (0.04 + 0.05 * (1.0 - lightness)) * sheen[..., None]
    edge = 4.0 * hair * (1.0 - hair)
    alpha = np.clip(hair + 0.45 * edge * fine, 0, 1)
    return _over(out, texture, alpha)


def paint_appearance(
    image: np.ndarray, points: np.ndarray, appearance: Appearance, source: str, flip: bool = False
) -> np.ndarray:
    """The framed photograph ``image`` (size x size RGB uint8, face landmarks ``points`` in OpenCV's
    pixel convention; ``source`` names the photograph, ``flip`` whether it is mirrored) with
    ``appearance`` painted on it."""
    if appearance == Appearance():
        return image
    size = image.shape[0]
    rng = np.random.default_rng(appearance.texture_seed)
    face = _Face(np.asarray(points, np.float64), size)
    rgb = image.astype(np.float32) / 255.0
    replace_hair = appearance.hair != "photo"
    if replace_hair:
        keep = PHOTO_FOREHEAD.get(source, (0.15, 0.15))
        rgb = _raise_forehead(rgb, face, keep[::-1] if flip else keep, appearance.hairline + 0.15)
    lab = _to_lab(rgb)
    cheek_lab = _cheek_lab(lab, face)
    skin = _skin_weight(lab, face, cheek_lab)
    inner_mouth = _fill((size, size), [face.image(face.local[60:68])])
    eyes = _eyes_mask(face, 0.05) * (1.0 - skin)  # the eyeballs; reddish lids inside the outline are skin
    keep_out = _blur(np.maximum(eyes, inner_mouth), face.px(0.01))
    face_region = _blur(_fill((size, size), [face.face_polygon(1.5)]), face.px(0.01))
    body = _blur(_fill((size, size), [_body_polygon(face)]), face.px(0.01)) * (1.0 - face_region)
    if appearance.smooth > 0:
        smoothed = rgb
        for _ in range(3):
            smoothed = cv2.bilateralFilter(smoothed, 0, 0.12, face.px(0.06))
        weight = (appearance.smooth * face_region)[..., None]
        rgb = rgb * (1 - weight) + smoothed * weight
        lab = _to_lab(rgb)
    if appearance.skin is not None:
        target = np.asarray(appearance.skin, np.float32)
        weight = np.clip(face_region + body * skin, 0, 1) * (1.0 - keep_out)
        shifted = lab.copy()
        contrast = 0.7 + 0.3 * target[0] / 75.0
        shifted[..., 0] = target[0] + (lab[..., 0] - cheek_lab[0]) * contrast
        shifted[..., 1:] = lab[..., 1:] * 0.6 + (target[1:] - cheek_lab[1:] * 0.6)
        lab = lab * (1 - weight[..., None]) + shifted * weight[..., None]
        rgb = _to_rgb(lab)
    if not PHOTO_NECK.get(source, True):
        rgb = _paint_body(rgb, face, appearance, rng, body)
    elif appearance.clothes is not None:
        clothes = body * (1.0 - skin)
        pixels = lab[clothes > 0.5]
        if len(pixels):
            mean = pixels.mean(axis=0)
            target = np.asarray(appearance.clothes, np.float32)
            shifted = lab.copy()
            shifted[..., 0] = target[0] + np.clip(lab[..., 0] - mean[0], -40, 25) * 0.6
            shifted[..., 1:] = target[1:] + (lab[..., 1:] - mean[1:]) * 0.3
            rgb = _to_rgb(lab * (1 - clothes[..., None]) + shifted * clothes[..., None])
    if appearance.wrinkles > 0:
        rgb = _wrinkles(rgb, face, appearance.wrinkles, rng)
    if appearance.brow_thickness > 0:
        rgb = _brows(rgb, face, appearance, rng)
    if appearance.facial_hair != "none" and appearance.facial_hair_density > 0:
        rgb = _facial_hair(rgb, face, appearance, rng)
    if replace_hair:
        hair, face_skin = _hair_region(face, appearance, rng)
        person = np.maximum(face_region * face_skin, body)
        rgb = _hair(rgb, face, appearance, rng, _blur(person, face.px(0.01)), hair)
    if appearance.glasses != "none":
        rgb = _glasses(rgb, face, appearance)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _hsv_rgb(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
    pixel = np.array([[[hue, saturation, value]]], np.float32)
    rgb = cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0] * 255.0
    return tuple(round(float(c), 1) for c in rgb)


def draw_appearance(seed: int, index: int, male: bool, source: str) -> Appearance:
    """Speaker ``index``'s appearance for dataset ``seed``.

    Random stream ``[seed, 4, index]``, its own, so that voices, sentences and motion do not depend on
    it. Skin tone, hair colour and the styles are taken in turn from orders shuffled once per seed
    (stream ``[seed, 4]``), so that any six consecutive speakers have six different skin tones and
    hair colours, and the men (the even indices) and the women their own run of styles.
    """
    order = np.random.default_rng([seed, 4])
    tones = order.permutation(len(SKIN_TONES))
    colours = order.permutation(len(HAIR_COLOURS))
    male_styles = order.permutation(len(MALE_HAIR_STYLES))
    female_styles = order.permutation(len(FEMALE_HAIR_STYLES))
    beards = order.permutation(len(FACIAL_HAIR) - 1)  # the men all have some: it makes them read as men
    backgrounds = order.permutation(len(BACKGROUNDS))
    hues = order.permutation(12)
    rng = np.random.default_rng([seed, 4, index])

    def u(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    turn = index // 2  # the how-many-th man or woman
    tone = np.asarray(SKIN_TONES[tones[index % len(tones)]]) + [u(-3, 3), u(-1.5, 1.5), u(-2, 2)]
    hair_rgb = np.asarray(HAIR_COLOURS[colours[index % len(colours)]], np.float64) * u(0.9, 1.1)
    if male:
        hair = MALE_HAIR_STYLES[male_styles[turn % len(male_styles)]]
        hairline = {
            "short": u(0.45, 0.65),
            "crop": u(0.5, 0.7),
            "receding": u(0.6, 0.72),
            "side": u(0.4, 0.6),
        }[hair]
        volume = u(0.0, 0.12)
        facial_hair = FACIAL_HAIR[1 + beards[turn % len(beards)]]
        if source == "hopper" and facial_hair == "stubble":  # too faint on that face to read as a man's
            facial_hair = "beard"
        density = {"none": 0.0, "stubble": u(0.6, 1.0), "moustache": u(0.8, 0.95)}.get(
            facial_hair, u(0.75, 0.95)
        )
        brow_thickness = u(0.07, 0.1)
    else:
        hair = FEMALE_HAIR_STYLES[female_styles[turn % len(female_styles)]]
        hairline = {"bob": u(0.38, 0.5), "long": u(0.3, 0.55), "side": u(0.35, 0.55)}[hair]
        volume = u(0.06, 0.25)
        facial_hair, density = "none", 0.0
        brow_thickness = u(0.04, 0.065)
    grey = hair_rgb.max() - hair_rgb.min() < 10
    brow_rgb = hair_rgb * (0.9 if grey else 0.6)
    beard_rgb = hair_rgb * (0.95 if grey else 0.65)
    hue = 30.0 * hues[index % len(hues)] + u(-10, 10)
    background = BACKGROUNDS[backgrounds[index % len(backgrounds)]]
    value = u(0.35, 0.85)
    top = _hsv_rgb(hue % 360, u(0.12, 0.45), value)
    bottom = _hsv_rgb((hue + u(-40, 40)) % 360, u(0.1, 0.5), float(np.clip(value * u(0.5, 1.2), 0.15, 0.95)))
    clothes = (u(22, 68), u(-30, 30), u(-35, 30))
    glasses = "none"
    if source != "hopper" and rng.random() < 0.4:  # the hopper photograph has glasses of its own
        glasses = GLASSES[1 + int(rng.integers(2))]
    glasses_rgb = [(25, 25, 28), (70, 45, 30), (150, 120, 60), (160, 160, 165)][int(rng.integers(4))]
    wrinkles = u(0.4, 1.0) if source != "hopper" and rng.random() < 0.4 else 0.0
    smooth = u(0.6, 1.0) if source == "hopper" and rng.random() < 0.6 else 0.0
    return Appearance(
        texture_seed=int(rng.integers(2**31)),
        skin=tuple(round(float(c), 2) for c in tone),
        hair=hair,
        hair_rgb=tuple(round(float(c), 1) for c in np.clip(hair_rgb, 0, 255)),
        hairline=round(hairline, 3),
        hair_volume=round(volume, 3),
        background=background,
        background_rgb=top,
        background_rgb2=bottom,
        clothes=tuple(round(c, 2) for c in clothes),
        brow_thickness=round(brow_thickness, 3),
        brow_rgb=tuple(round(float(c), 1) for c in brow_rgb),
        facial_hair=facial_hair,
        facial_hair_density=round(density, 3),
        facial_hair_rgb=tuple(round(float(c), 1) for c in beard_rgb),
        glasses=glasses,
        glasses_rgb=tuple(float(c) for c in glasses_rgb),
        wrinkles=round(wrinkles, 3),
        smooth=round(smooth, 3),
    )
