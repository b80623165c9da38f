"""Dataset-independent facts shared by every stage: frame rate, emotion classes, the 68-point layout."""

VIDEO_FPS = 25
AUDIO_SAMPLE_RATE = 16_000
CANONICAL_FACE_SIZE = 256  # aligned landmark frame (pixels); all landmark metrics are in this frame

# MEAD's eight emotions, in a fixed class order used for labels everywhere.
EMOTIONS = ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
EMOTION_TO_INDEX = {name: index for index, name in enumerate(EMOTIONS)}
# CREMA-D's six emotion codes mapped onto the same classes (CREMA-D README).
CREMA_D_EMOTIONS = {
    "NEU": "neutral",
    "ANG": "angry",
    "DIS": "disgusted",
    "FEA": "fear",
    "HAP": "happy",
    "SAD": "sad",
}
# CREMA-D intensity codes: low / medium / high / unspecified; mapped onto MEAD's levels 1-3 (XX -> 2).
CREMA_D_LEVELS = {"LO": 1, "MD": 2, "HI": 3, "XX": 2}

# iBUG-68 layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
NOSE_BASE = tuple(range(31, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIP = tuple(range(48, 60))
INNER_LIP = tuple(range(60, 68))
MOUTH = tuple(range(48, 68))
NUM_LANDMARKS = 68

# MediaPipe FaceMesh (468 points) -> iBUG-68, the widely used table (e.g. bytedance/LatentSync),
# as recorded in docs/design decisions.
MEDIAPIPE_TO_68 = (
    162,
    234,
    93,
    58,
    172,
    136,
    149,
    148,
    152,
    377,
    378,
    365,
    397,
    288,
    323,
    454,
    389,
    71,
    63,
    105,
    66,
    107,
    336,
    296,
    334,
    293,
    301,
    168,
    197,
    5,
    4,
    75,
    97,
    2,
    326,
    305,
    33,
    160,
    158,
    133,
    153,
    144,
    362,
    385,
    387,
    263,
    373,
    380,
    61,
    39,
    37,
    0,
    267,
    269,
    291,
    405,
    314,
    17,
    84,
    181,
    78,
    82,
    13,
    312,
    308,
    317,
    14,
    87,
)
assert len(MEDIAPIPE_TO_68) == NUM_LANDMARKS
