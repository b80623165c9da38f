"""Assemble the synthetic emotional talking-face dataset in MEAD's layout.

Layout (as MEAD's front view; one clip = three files with the same stem)::

    OUT/<speaker>/video/front/<emotion>/level_<n>/<nnn>.mp4      H.264 yuv420p, 25 fps, no audio track
    OUT/<speaker>/audio/<emotion>/level_<n>/<nnn>.m4a            AAC, 16 kHz mono
    OUT/<speaker>/landmarks/front/<emotion>/level_<n>/<nnn>.npy  (T, 68, 2) float32 target landmarks
    OUT/synth_info.json                                          seed, preset, settings, clip list

As in MEAD, ``neutral`` exists only at ``level_1``; it gets ``clips_per_cell x len(levels)`` clips
there so that the emotion classes stay balanced. Every clip is generated from its own random stream
(seeded by the dataset seed, speaker, emotion, level and clip number), so the result does not depend
on the number of workers or on which clips were already present.
"""

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import cv2
import numpy as np

from eapc_lightning.constants import AUDIO_SAMPLE_RATE, EMOTION_TO_INDEX, EMOTIONS, VIDEO_FPS
from eapc_lightning.fileio import atomic_write_json
from eapc_lightning.synth.appearance import draw_appearance
from eapc_lightning.synth.emotion import LEVEL_INTENSITY, face_offsets, voice_style
from eapc_lightning.synth.espeak import (
    ESPEAK_VOWELS,
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    EspeakVoice,
    speak_sentences,
)
from eapc_lightning.synth.face import DETECTOR_PIXEL_OFFSET, FaceRig, Identity, head_matrix, head_motion
from eapc_lightning.synth.media import write_audio, write_npy, write_video
from eapc_lightning.synth.recording import apply_conditions, draw_conditions
from eapc_lightning.synth.speech import (
    Voice,
    articulation,
    build_tracks,
    per_video_frame,
    plan_sentence,
    render_audio,
)

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3  # bump when the output of a given seed and settings changes
SETTINGS_MARKER = ".synth_settings.json"
INFO_FILE = "synth_info.json"
DURATION_SPREAD = 0.15  # clip length varies uniformly within +-15 % of ``seconds``
SAMPLES_PER_FRAME = AUDIO_SAMPLE_RATE // VIDEO_FPS


@dataclass(frozen=True)
class SynthSettings:
    """Size of a synthetic dataset. ``size`` is the video frame side in pixels."""

    speakers: int
    emotions: tuple[str, ...] = EMOTIONS
    levels: tuple[int, ...] = (1, 2, 3)
    clips_per_cell: int = 1
    seconds: float = 3.0
    size: int = 256
    recording: bool = (
        True  # each clip's audio through its own room, channel, noise and gain (synth/recording.py)
    )
    # "espeak": random English sentences by eSpeak NG, the mouth on its phoneme times (synth/espeak.py);
    # "formant": the additive formant synthesiser's random syllables (synth/speech.py)
    voice: str = "formant"

    def validate(self) -> "SynthSettings":
        if self.speakers < 1 or self.clips_per_cell < 1:
            raise ValueError("speakers and clips_per_cell must be at least 1")
        if not 0.5 <= self.seconds <= 60:
            raise ValueError(f"seconds must be within 0.5-60, got {self.seconds}")
        unknown = [e for e in self.emotions if e not in EMOTION_TO_INDEX]
        if unknown or not self.emotions:
            raise ValueError(f"unknown emotions {unknown}; choose from {', '.join(EMOTIONS)}")
        if not self.levels or any(level not in LEVEL_INTENSITY for level in self.levels):
            raise ValueError(
                f"levels must be a non-empty subset of {sorted(LEVEL_INTENSITY)}, got {self.levels}"
            )
        if self.size < 128 or self.size % 2:
            raise ValueError(f"size must be an even number >= 128, got {self.size}")
        if self.voice not in VOICES:
            raise ValueError(f"unknown voice {self.voice!r}; choose from {', '.join(VOICES)}")
        return self


VOICES = ("formant", "espeak")

SYNTH_PRESETS = {
    # unit tests: 2 speakers x {angry, sad} x level 3 x 1 clip x ~2 s = 4 clips, ~200 frames
    "tiny": SynthSettings(speakers=2, emotions=("angry", "sad"), levels=(3,), clips_per_cell=1, seconds=2.0),
    # quick end-to-end runs: 3 speakers x 8 emotions x levels 1, 3 = 48 clips, ~2.9k frames
    "small": SynthSettings(speakers=3, levels=(1, 3), clips_per_cell=1, seconds=2.4),
    # training default: 6 speakers x 8 emotions x 3 levels x 2 clips = 288 clips, ~21.6k frames
    "default": SynthSettings(speakers=6, levels=(1, 2, 3), clips_per_cell=2, seconds=3.0),
}


def resolve_settings(preset: str, overrides: dict) -> SynthSettings:
    if preset not in SYNTH_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(SYNTH_PRESETS)}")
    known = set(SynthSettings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown synth settings {unknown}; known: {sorted(known)}")
    values = {k: v for k, v in overrides.items() if v is not None}
    if "emotions" in values:
        values["emotions"] = tuple(values["emotions"])
    if "levels" in values:
        values["levels"] = tuple(int(level) for level in values["levels"])
    return replace(SYNTH_PRESETS[preset], **values).validate()


@dataclass(frozen=True)
class Speaker:
    index: int
    name: str
    voice: Voice
    espeak_voice: EspeakVoice
    identity: Identity


SOURCES = ("astronaut", "hopper")


def speaker_profile(index: int, seed: int) -> Speaker:
    """MEAD-style speaker ``M101, W102, M103, ...``: alternating gender, a face and a voice.

    The voice, framing, colour grading and face shape come from the random stream ``[seed, 1, index]``
    (the voice draws first, as before appearances existed); the appearance (skin, hair, facial hair,
    glasses, background, ...) from its own stream (:func:`~eapc_lightning.synth.appearance.draw_appearance`).
    The two photographs alternate so that each pair of speakers (a man and a woman) has one of each,
    and speakers of the same photograph alternate between mirrored and not.
    """
    rng = np.random.default_rng([seed, 1, index])
    male = index % 2 == 0
    name = f"{'M' if male else 'W'}{101 + index:03d}"
    voice = Voice(
        pitch=float(rng.uniform(100, 130) if male else rng.uniform(185, 225)),
        formant_scale=float(rng.uniform(0.97, 1.04) if male else rng.uniform(1.12, 1.2)),
        syllable_rate=float(rng.uniform(3.6, 4.6)),
    )

    def u(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    source = SOURCES[(index + index // 2) % 2]
    appearance = draw_appearance(seed, index, male, source)
    shape = np.random.default_rng([seed, 5, index])  # the shape draws added with the appearances
    identity = Identity(
        source=source,
        flip=bool((index // 2) % 2),
        scale=u(0.9, 1.04),
        rotation=u(-4, 4),
        offset=(u(-6, 6), u(-6, 6)),
        hue=u(-6, 6),
        saturation=u(0.85, 1.15),
        brightness=u(0.9, 1.08),
        gamma=u(0.9, 1.12),
        jaw_width=u(0.0, 0.1) if male else u(-0.08, 0.03),
        face_length=u(-0.05, 0.08),
        eye_size=u(-0.1, 0.12),
        mouth_width=u(-0.1, 0.1),
        nose_length=u(-0.04, 0.06),
        brow_height=u(-0.04, 0.05),
        nose_width=float(shape.uniform(-0.1, 0.18)) if male else float(shape.uniform(-0.12, 0.1)),
        chin=float(shape.uniform(-0.03, 0.04)),
        appearance=appearance,
    )
    # the eSpeak voice from a stream of its own, so the formant voice's draws stay as they were
    variants = MALE_VARIANTS if male else FEMALE_VARIANTS
    espeak_voice = EspeakVoice(
        variant=variants[(index // 2) % len(variants)],
        pitch=float(np.random.default_rng([seed, 6, index]).uniform(35, 65)),
        syllable_rate=voice.syllable_rate,
    )
    return Speaker(index, name, voice, espeak_voice, identity)


@dataclass(frozen=True)
class ClipSpec:
    speaker: int
    emotion: str
    level: int
    clip: int  # 1-based, MEAD's "001"

    def relative_paths(self, speaker_name: str) -> dict[str, str]:
        cell = f"{self.emotion}/level_{self.level}/{self.clip:03d}"
        return {
            "video": f"{speaker_name}/video/front/{cell}.mp4",
            "audio": f"{speaker_name}/audio/{cell}.m4a",
            "landmarks": f"{speaker_name}/landmarks/front/{cell}.npy",
        }


def clip_specs(settings: SynthSettings) -> list[ClipSpec]:
    specs = []
    for speaker in range(settings.speakers):
        for emotion in settings.emotions:
            if emotion == "neutral":
                cells = [(1, settings.clips_per_cell * len(settings.levels))]
            else:
                cells = [(level, settings.clips_per_cell) for level in sorted(settings.levels)]
            for level, count in cells:
                specs.extend(ClipSpec(speaker, emotion, level, clip) for clip in range(1, count + 1))
    return specs


@dataclass
class ClipData:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (T, 68, 2) float32, detector pixel convention
    audio: np.ndarray  # (T * 640,) float32, 16 kHz
    opening: np.ndarray  # (T,) jaw opening driving the mouth
    spread: np.ndarray  # (T,)


@lru_cache(maxsize=8)
def _rig(identity: Identity, size: int) -> FaceRig:
    return FaceRig(identity, size)


def make_clip(spec: ClipSpec, settings: SynthSettings, seed: int, render: bool = True) -> ClipData:
    """Synthesize one clip in memory. ``render=False`` skips the video frames (landmarks and audio only)."""
    speaker = speaker_profile(spec.speaker, seed)
    rng = np.random.default_rng(
        [seed, 2, spec.speaker, EMOTION_TO_INDEX[spec.emotion], spec.level, spec.clip]
    )
    seconds = settings.seconds * float(rng.uniform(1 - DURATION_SPREAD, 1 + DURATION_SPREAD))
    num_frames = max(int(round(seconds * VIDEO_FPS)), 1)
    style = voice_style(spec.emotion, spec.level)
    if settings.voice == "espeak":
        audio, plan = speak_sentences(rng, num_frames / VIDEO_FPS, speaker.espeak_voice, style)
        mouth_opening, lip_spread = articulation(plan, style, ESPEAK_VOWELS)
    else:
        plan = plan_sentence(rng, num_frames / VIDEO_FPS, speaker.voice.syllable_rate * style.tempo)
        tracks = build_tracks(plan, speaker.voice, style, rng)
        audio = render_audio(tracks, speaker.voice, style, rng, num_frames * SAMPLES_PER_FRAME)
        mouth_opening, lip_spread = tracks.opening, tracks.spread
    if settings.recording:  # a stream of its own: the speech and the face do not depend on the switch
        room = np.random.default_rng(
            [seed, 3, spec.speaker, EMOTION_TO_INDEX[spec.emotion], spec.level, spec.clip]
        )
        audio = apply_conditions(audio, draw_conditions(room), room)

    expression, jaw_bias = face_offsets(spec.emotion, spec.level)
    opening = per_video_frame(mouth_opening, num_frames) + jaw_bias
    spread = per_video_frame(lip_spread, num_frames)
    rig = _rig(speaker.identity, settings.size)
    heads = head_motion(rng, num_frames, rig.centre, VIDEO_FPS)
    targets = np.stack([rig.pose(expression, opening[i], spread[i], heads[i]) for i in range(num_frames)])
    frames = (
        np.stack([rig.render(targets[i], heads[i]) for i in range(num_frames)]) if render else np.zeros((0,))
    )
    return ClipData(
        frames=frames,
        landmarks=(targets + DETECTOR_PIXEL_OFFSET).astype(np.float32),
        audio=audio,
        opening=opening.astype(np.float32),
        spread=spread.astype(np.float32),
    )


def _record(spec: ClipSpec, seed: int, out: Path) -> dict:
    name = speaker_profile(spec.speaker, seed).name
    paths = spec.relative_paths(name)
    return {
        "speaker": name,
        "emotion": spec.emotion,
        "level": spec.level,
        "clip": f"{spec.clip:03d}",
        **{key: str(out / value) for key, value in paths.items()},
    }


def _generate_one(spec: ClipSpec, settings: SynthSettings, seed: int, out: str, overwrite: bool) -> dict:
    record = _record(spec, seed, Path(out))
    files = [Path(record[key]) for key in ("video", "audio", "landmarks")]
    if not overwrite and all(path.is_file() for path in files):
        return {**record, "status": "skipped", "num_frames": int(np.load(files[2], mmap_mode="r").shape[0])}
    try:
        clip = make_clip(spec, settings, seed)
        write_audio(record["audio"], clip.audio, AUDIO_SAMPLE_RATE)
        write_video(record["video"], clip.frames, VIDEO_FPS)
        write_npy(record["landmarks"], clip.landmarks)
    except Exception as error:  # one bad clip must not stop the dataset
        log.exception("synthetic clip %s failed", record["video"])
        return {**record, "status": "failed", "error": f"{type(error).__name__}: {error}", "num_frames": None}
    return {**record, "status": "generated", "num_frames": len(clip.landmarks)}


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def _pool_context():
    """``fork`` where the platform has it: workers need only numpy/OpenCV/PyAV state, and unlike
    ``spawn`` it does not re-import the caller's ``__main__`` (console scripts without a main guard)."""
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files of an interrupted run (hidden ``.*.tmp`` beside their destination)."""
    for temporary in out.glob("*/**/.*.tmp"):
        temporary.unlink(missing_ok=True)


def generate_dataset(
    out_dir: str | Path,
    preset: str = "default",
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[dict], None] | None = None,
    **overrides,
) -> list[dict]:
    """Write the synthetic dataset under ``out_dir``; return one record per clip.

    A record holds speaker, emotion, level, clip, the absolute video/audio/landmarks paths, a
    status ("generated", "skipped" when the clip was already complete from a run with the same
    seed and settings, or "failed" with an ``error``) and num_frames. ``overrides`` replace fields
    of the preset (speakers, emotions, levels, clips_per_cell, seconds, size). ``progress`` is called
    with each record as it completes. ``synth_info.json`` is written last, atomically.
    """
    settings = resolve_settings(preset, overrides)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    signature = {"generator_version": GENERATOR_VERSION, "seed": int(seed), "settings": asdict(settings)}
    signature = json.loads(json.dumps(signature))  # the form it takes after a JSON round trip
    marker = out / SETTINGS_MARKER
    previous = json.loads(marker.read_text()) if marker.is_file() else None
    overwrite = previous is not None and previous != signature
    if previous != signature:
        (out / INFO_FILE).unlink(missing_ok=True)
        atomic_write_json(marker, signature)
    _remove_stale_temporaries(out)

    specs = clip_specs(settings)
    results: dict[int, dict] = {}
    if workers <= 1:
        _init_worker()
        for index, spec in enumerate(specs):
            results[index] = _generate_one(spec, settings, seed, str(out), overwrite)
            if progress:
                progress(results[index])
    else:
        import cv2

        # OpenCV's worker threads, and the locks they may hold, must not be copied into forked workers
        # (a worker's first OpenCV call then waits forever): the pool starts from a single-threaded parent
        parent_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=_pool_context(), initializer=_init_worker
            ) as pool:
                futures = {
                    pool.submit(_generate_one, spec, settings, seed, str(out), overwrite): index
                    for index, spec in enumerate(specs)
                }
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    if progress:
                        progress(results[futures[future]])
        finally:
            cv2.setNumThreads(parent_threads)
    records = [results[index] for index in range(len(specs))]

    def relative(record: dict) -> dict:
        return {
            k: (os.path.relpath(v, out) if k in ("video", "audio", "landmarks") else v)
            for k, v in record.items()
            if k != "status"
        }

    info = {
        **signature,
        "preset": preset,
        "speakers": [
            {
                "name": s.name,
                "voice": asdict(s.voice),
                "espeak_voice": asdict(s.espeak_voice),
                "identity": asdict(s.identity),
            }
            for s in (speaker_profile(i, seed) for i in range(settings.speakers))
        ],
        "video": {"fps": VIDEO_FPS, "size": settings.size, "codec": "h264", "pix_fmt": "yuv420p"},
        "audio": {"sample_rate": AUDIO_SAMPLE_RATE, "codec": "aac", "channels": 1},
        "landmarks": "(T, 68, 2) float32 pixel (x, y) in the video frame, x = column + 0.5",
        "clips": [relative(r) for r in records if r["status"] != "failed"],
        "failed": [relative(r) for r in records if r["status"] == "failed"],
    }
    atomic_write_json(out / INFO_FILE, info)
    return records


def speaker_still(index: int, seed: int = 0, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Speaker ``index``'s face at rest (neutral expression, mouth at rest, no head motion): the RGB
    frame and its (68, 2) target landmarks in the detector's convention (as in the landmark files)."""
    rig = _rig(speaker_profile(index, seed).identity, size)
    still = head_matrix(0.0, (0.0, 0.0), 1.0, rig.centre)
    targets = rig.pose(np.zeros((68, 2)), 0.0, 0.0, still)
    return rig.render(targets, still), (targets + DETECTOR_PIXEL_OFFSET).astype(np.float32)


def contact_sheet(seed: int = 0, speakers: int = 6, size: int = 256, columns: int = 3) -> np.ndarray:
    """The resting faces of the first ``speakers`` speakers in a grid, each labelled with its name (RGB)."""
    rows = -(-speakers // columns)
    sheet = np.full((rows * size, columns * size, 3), 255, np.uint8)
    for index in range(speakers):
        row, column = divmod(index, columns)
        tile = speaker_still(index, seed, size)[0].copy()
        label = speaker_profile(index, seed).name
        scale = size / 512
        for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(
                tile,
                label,
                (int(8 * scale) + 2, int(40 * scale) + 6),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale * 1.2,
                colour,
                width,
                cv2.LINE_AA,
            )
        sheet[row * size : (row + 1) * size, column * size : (column + 1) * size] = tile
    return sheet


def write_contact_sheet(path: str | Path, seed: int = 0, speakers: int = 6, size: int = 256) -> Path:
    """Save :func:`contact_sheet` as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(
        str(path), contact_sheet(seed, speakers, size)[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]
    ):
        raise OSError(f"could not write {path}")
    return path
