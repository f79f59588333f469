"""Synthetic scenes whose two modalities are complementary by construction.

Each class is the unique pair (audio group, visual group) below: the two classes of an audio
group are rendered by the same audio code with the same parameter distribution, and likewise
for visual groups, so audio alone or video alone can reach at best ~50% while fusion can get
every class right. The dataset writer and the stream writer both render through this module,
so a model trained on the synthetic dataset recognises the synthetic stream.

Audio cues (all below 7 kHz so they survive resampling to 16 kHz and AAC; stationary so any 1-s
crop shows them): band-limited noise of a group-specific colour, group-specific tones, an
amplitude-modulation rate, and an inter-channel level difference and coherence. Video cues
(coarse, so they survive H.264 and a 64x64 resize): dominant hue and stripe orientation, period
and drift. Parameters vary per location and per clip; moving discs, background noise, transient
clicks and gain changes are nuisances shared by every group.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from avstream.scenes import SCENES

AUDIO_GROUPS: Final[tuple[tuple[str, str], ...]] = (
    ("airport", "shopping_mall"),
    ("bus", "tram"),
    ("metro", "metro_station"),
    ("park", "public_square"),
    ("street_pedestrian", "street_traffic"),
)
VISUAL_GROUPS: Final[tuple[tuple[str, str], ...]] = (
    ("airport", "bus"),
    ("tram", "metro"),
    ("metro_station", "park"),
    ("public_square", "street_pedestrian"),
    ("street_traffic", "shopping_mall"),
)
AUDIO_GROUP_OF: Final[dict[str, int]] = {s: g for g, pair in enumerate(AUDIO_GROUPS) for s in pair}
VISUAL_GROUP_OF: Final[dict[str, int]] = {
    s: g for g, pair in enumerate(VISUAL_GROUPS) for s in pair
}

SYNTH_SAMPLE_RATE_HZ: Final[int] = 48_000  # TAU's rate and format (24-bit stereo WAV)
MAX_CONTENT_HZ: Final[float] = 7_000.0  # every cue stays below the 8 kHz Nyquist of a 16 kHz model
BAND_ORDER: Final[int] = 4  # Butterworth-like slope of the noise band edges
PEAK_LIMIT: Final[float] = 0.98
NOISE_BANK: Final[int] = 8  # distinct pixel-noise images cycled through a clip


@dataclass(frozen=True)
class AudioSignature:
    """The sound of one audio group (before per-location and per-clip variation)."""

    band_hz: tuple[float, float]
    tilt_db_per_octave: float
    """Noise colour: spectral slope inside the band."""
    tones_hz: tuple[float, ...]
    tone_level_db: float
    """Tones relative to the noise RMS."""
    tone_vibrato: float
    """Relative frequency-modulation depth of the tones (bird-like warble when > 0)."""
    am_rate_hz: float
    am_depth: float
    ild_db: float
    """Left minus right level."""
    coherence: float
    """Share of the noise common to both channels (1 = identical channels)."""


AUDIO_SIGNATURES: Final[tuple[AudioSignature, ...]] = (
    # airport / shopping_mall: a reverberant hall with a chime-like pair of tones
    AudioSignature((150.0, 4000.0), -3.0, (523.0, 784.0), -12.0, 0.0, 0.7, 0.3, 0.0, 0.2),
    # bus / tram: engine rumble and its harmonics, strongly correlated channels
    AudioSignature((30.0, 600.0), -6.0, (95.0, 190.0, 285.0), -6.0, 0.0, 3.0, 0.5, 1.5, 0.9),
    # metro / metro_station: rail screech band, high tones, fast clatter
    AudioSignature((800.0, 5000.0), 0.0, (2100.0, 3150.0), -10.0, 0.0, 9.0, 0.7, -3.0, 0.6),
    # park / public_square: airy high band and warbling "birds"
    AudioSignature((2000.0, 6500.0), 2.0, (3600.0,), -8.0, 0.04, 1.5, 0.4, 0.0, 0.3),
    # street_pedestrian / street_traffic: broadband traffic noise from one side
    AudioSignature((60.0, 2500.0), -4.5, (160.0, 1200.0), -14.0, 0.0, 5.0, 0.6, 3.0, 0.5),
)


@dataclass(frozen=True)
class VisualSignature:
    """The look of one visual group (before per-location and per-clip variation)."""

    hue_deg: float
    stripe_angle_deg: float
    stripe_period: float
    """Stripe period as a fraction of the frame width."""
    drift_hz: float
    """Stripe cycles passing a point per second (signed)."""


VISUAL_SIGNATURES: Final[tuple[VisualSignature, ...]] = (
    VisualSignature(0.0, 0.0, 0.25, 0.2),  # airport / bus: red, vertical stripes
    VisualSignature(72.0, 36.0, 0.20, 0.5),  # tram / metro: yellow-green
    VisualSignature(144.0, 72.0, 0.30, -0.3),  # metro_station / park: green-cyan
    VisualSignature(216.0, 108.0, 0.22, 0.4),  # public_square / street_pedestrian: blue
    VisualSignature(288.0, 144.0, 0.27, -0.5),  # street_traffic / shopping_mall: magenta
)


@dataclass(frozen=True)
class AudioParams:
    """Concrete audio parameters of one location (drawn once, shared by its clips)."""

    group: int
    band_hz: tuple[float, float]
    tilt_db_per_octave: float
    tones_hz: tuple[float, ...]
    tone_level_db: float
    tone_vibrato: float
    am_rate_hz: float
    am_depth: float
    ild_db: float
    coherence: float


@dataclass(frozen=True)
class VisualParams:
    """Concrete visual parameters of one location (drawn once, shared by its clips)."""

    group: int
    hue_deg: float
    stripe_angle_deg: float
    stripe_period: float
    drift_hz: float
    saturation: float
    brightness: float
    contrast: float


def check_groups(classes: tuple[str, ...] = SCENES) -> None:
    """Each class must be exactly one (audio group, visual group) pair, and each pair one class."""
    pairs = {(AUDIO_GROUP_OF.get(c), VISUAL_GROUP_OF.get(c)) for c in classes}
    if None in {p for pair in pairs for p in pair} or len(pairs) != len(classes):
        raise ValueError(
            f"synthetic groups do not give each of {classes} a unique (audio, visual) group pair"
        )


def scene_groups(scene: str) -> tuple[int, int]:
    """(audio group, visual group) of a scene name."""
    if scene not in AUDIO_GROUP_OF:
        raise ValueError(f"unknown scene {scene!r}; expected one of {', '.join(SCENES)}")
    return AUDIO_GROUP_OF[scene], VISUAL_GROUP_OF[scene]


def draw_audio_params(group: int, rng: np.random.Generator) -> AudioParams:
    """A location's sound: the group signature jittered (far less than groups differ)."""
    s = AUDIO_SIGNATURES[group]
    lo, hi = s.band_hz
    lo *= rng.uniform(0.9, 1.1)
    hi = min(hi * rng.uniform(0.9, 1.1), MAX_CONTENT_HZ)
    tone_scale = rng.uniform(0.96, 1.04)
    return AudioParams(
        group=group,
        band_hz=(lo, hi),
        tilt_db_per_octave=s.tilt_db_per_octave + rng.uniform(-1.0, 1.0),
        tones_hz=tuple(f * tone_scale for f in s.tones_hz),
        tone_level_db=s.tone_level_db + rng.uniform(-3.0, 3.0),
        tone_vibrato=s.tone_vibrato,
        am_rate_hz=s.am_rate_hz * rng.uniform(0.85, 1.15),
        am_depth=float(np.clip(s.am_depth + rng.uniform(-0.1, 0.1), 0.0, 0.9)),
        ild_db=s.ild_db + rng.uniform(-1.0, 1.0),
        coherence=float(np.clip(s.coherence + rng.uniform(-0.1, 0.1), 0.0, 1.0)),
    )


SIDE_CUE_COHERENCE: Final[tuple[float, float]] = (0.95, 0.15)
"""Inter-channel coherence of the first and second class of an audio group under the side cue."""
SIDE_CUE_JITTER: Final[float] = 0.05


def with_side_cue(params: AudioParams, scene: str, rng: np.random.Generator) -> AudioParams:
    """The location's sound with its coherence set by the scene's place in its audio group.

    The two classes of a group then differ only in how alike the two channels are, a cue that
    lives in L-R (nearly silent for the first class, loud for the second) and that a mono
    microphone removes: the synthetic stand-in for what binaural recordings carry."""
    coherence = SIDE_CUE_COHERENCE[AUDIO_GROUPS[params.group].index(scene)]
    jitter = rng.uniform(-SIDE_CUE_JITTER, SIDE_CUE_JITTER)
    return dataclasses.replace(params, coherence=float(np.clip(coherence + jitter, 0.0, 1.0)))


def draw_visual_params(group: int, rng: np.random.Generator) -> VisualParams:
    """A location's look: the group signature jittered (hue by +-10 deg of a 72 deg spacing)."""
    s = VISUAL_SIGNATURES[group]
    return VisualParams(
        group=group,
        hue_deg=(s.hue_deg + rng.uniform(-10.0, 10.0)) % 360.0,
        stripe_angle_deg=s.stripe_angle_deg + rng.uniform(-8.0, 8.0),
        stripe_period=s.stripe_period * rng.uniform(0.85, 1.15),
        drift_hz=s.drift_hz * rng.uniform(0.7, 1.3),
        saturation=rng.uniform(0.5, 0.9),
        brightness=rng.uniform(0.45, 0.7),
        contrast=rng.uniform(0.15, 0.3),
    )


# ----------------------------------------------------------------------------- audio


def _shaped_noise(
    n: int, sample_rate: int, band_hz: tuple[float, float], tilt: float, rng: np.random.Generator
) -> np.ndarray:
    """Gaussian noise coloured in the frequency domain: a smooth band with a dB/octave tilt."""
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    f = np.maximum(freqs, 1.0)
    lo, hi = band_hz
    band = (
        1.0
        / np.sqrt(1.0 + (lo / f) ** (2 * BAND_ORDER))
        / np.sqrt(1.0 + (f / hi) ** (2 * BAND_ORDER))
    )
    centre = np.sqrt(lo * hi)
    colour = 10.0 ** (tilt * np.log2(f / centre) / 20.0)
    spectrum = rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)
    x = np.fft.irfft(spectrum * band * colour, n=n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


def render_audio(
    params: AudioParams, n_samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """One clip of (2, n_samples) float32 audio in [-1, 1] for a location's parameters.

    Per clip: noise realisation, tone phases, modulation phase, overall level (-32..-18 dBFS
    RMS), a broadband background at 8..20 dB below the scene, and a few random clicks.
    """
    t = np.arange(n_samples) / sample_rate
    common = _shaped_noise(n_samples, sample_rate, params.band_hz, params.tilt_db_per_octave, rng)
    c = params.coherence
    channels = []
    for _ in range(2):
        own = _shaped_noise(n_samples, sample_rate, params.band_hz, params.tilt_db_per_octave, rng)
        channels.append(np.sqrt(c) * common + np.sqrt(1.0 - c) * own)
    noise = np.stack(channels)
    tones = np.zeros(n_samples)
    for f0 in params.tones_hz:
        phase = rng.uniform(0, 2 * np.pi)
        if params.tone_vibrato > 0:
            rate = rng.uniform(4.0, 8.0)
            inst = f0 * (1.0 + params.tone_vibrato * np.sin(2 * np.pi * rate * t))
            tones += np.sin(2 * np.pi * np.cumsum(inst) / sample_rate + phase)
        else:
            tones += np.sin(2 * np.pi * f0 * t + phase)
    if params.tones_hz:
        tones *= 10.0 ** (params.tone_level_db / 20.0) / _rms(tones)
    scene = noise + tones[None, :]
    envelope = 1.0 + params.am_depth * np.sin(
        2 * np.pi * params.am_rate_hz * t + rng.uniform(0, 2 * np.pi)
    )
    scene *= envelope[None, :]
    ild = 10.0 ** (params.ild_db / 40.0)
    scene[0] *= ild
    scene[1] /= ild
    background = _shaped_noise(n_samples, sample_rate, (50.0, MAX_CONTENT_HZ), -3.0, rng)
    snr_db = rng.uniform(8.0, 20.0)
    scene += (10.0 ** (-snr_db / 20.0)) * _rms(scene) * background[None, :]
    _add_clicks(scene, sample_rate, rng)
    level_db = rng.uniform(-32.0, -18.0)
    scene *= 10.0 ** (level_db / 20.0) / _rms(scene)
    return np.clip(scene, -PEAK_LIMIT, PEAK_LIMIT).astype(np.float32)


def _add_clicks(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> None:
    """Short decaying bursts at random times (about one every 2 s): a nuisance for every group."""
    n = x.shape[1]
    count = rng.poisson(0.5 * n / sample_rate)
    length = int(0.03 * sample_rate)
    if count == 0 or n <= length:
        return
    decay = np.exp(-np.arange(length) / (0.006 * sample_rate))
    level = 2.0 * _rms(x)
    for _ in range(count):
        start = int(rng.integers(0, n - length))
        burst = rng.standard_normal(length) * decay * level * rng.uniform(0.5, 2.0)
        x[:, start : start + length] += burst[None, :] * rng.uniform(0.6, 1.0, size=(2, 1))


# ----------------------------------------------------------------------------- video


@dataclass
class _Disc:
    x: float
    y: float
    vx: float
    vy: float
    radius: float
    rgb: tuple[int, int, int]


DISC_MAX_SATURATION: Final[int] = 48  # of OpenCV's 0..255 HSV saturation


def _random_discs(rng: np.random.Generator, width: int, height: int) -> list[_Disc]:
    discs = []
    for _ in range(int(rng.integers(2, 5))):
        hue = int(rng.integers(0, 180))
        # Pale discs: passers-by that move and occlude but do not carry another group's colour
        # (saturated discs of any hue taught small models to read the discs, not the scene).
        hsv = np.array([[[hue, int(rng.integers(0, DISC_MAX_SATURATION)), int(rng.integers(60, 240))]]], np.uint8)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
        speed = rng.uniform(0.05, 0.4) * width  # pixels per second
        angle = rng.uniform(0, 2 * np.pi)
        discs.append(
            _Disc(
                x=rng.uniform(0, width),
                y=rng.uniform(0, height),
                vx=speed * np.cos(angle),
                vy=speed * np.sin(angle),
                radius=rng.uniform(0.06, 0.15) * height,
                rgb=(int(rgb[0]), int(rgb[1]), int(rgb[2])),
            )
        )
    return discs


def render_video(
    params: VisualParams,
    n_frames: int,
    fps: float,
    width: int,
    height: int,
    rng: np.random.Generator,
    start_s: float = 0.0,
) -> np.ndarray:
    """(n_frames, height, width, 3) uint8 RGB frames for a location's parameters.

    Drifting stripes in the group's hue and orientation; per clip a stripe phase, a brightness
    wobble, moving discs of random colour (the same distribution for every group) and pixel noise.
    """
    t = start_s + np.arange(n_frames) / fps
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / np.float32(width)
    theta = np.deg2rad(params.stripe_angle_deg)
    proj = (xx * np.cos(theta) + yy * np.sin(theta)) / params.stripe_period
    still = 2 * np.pi * proj + np.float32(rng.uniform(0, 2 * np.pi))
    wobble = 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi))
    # sin(still - drift) = sin(still) cos(drift) - cos(still) sin(drift): one sin per pixel.
    drift = (2 * np.pi * params.drift_hz * t).astype(np.float32)[:, None, None]
    value = np.sin(still)[None] * np.cos(drift) - np.cos(still)[None] * np.sin(drift)
    value *= np.float32(params.contrast)
    value += (params.brightness + wobble).astype(np.float32)[:, None, None]
    hsv = np.empty((n_frames, height, width, 3), np.uint8)
    hsv[..., 0] = int(round(params.hue_deg / 2.0)) % 180  # OpenCV hue is 0..179 (degrees / 2)
    hsv[..., 1] = int(round(params.saturation * 255))
    hsv[..., 2] = np.clip(value * 255.0, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(hsv.reshape(n_frames * height, width, 3), cv2.COLOR_HSV2RGB).reshape(
        n_frames, height, width, 3
    )
    for disc in _random_discs(rng, width, height):
        for i, ti in enumerate(t - start_s):
            cx = _bounce(disc.x + disc.vx * ti, width)
            cy = _bounce(disc.y + disc.vy * ti, height)
            cv2.circle(rgb[i], (int(cx), int(cy)), int(disc.radius), disc.rgb, thickness=-1)
    # Luma noise from a small bank of noise images, picked at random per frame: sensor-like
    # grain at a fraction of the cost of fresh noise for every pixel of every frame.
    bank = rng.standard_normal(size=(NOISE_BANK, height, width, 1), dtype=np.float32)
    bank *= np.float32(rng.uniform(2.0, 6.0))
    noisy = bank[rng.integers(0, NOISE_BANK, size=n_frames)] + rgb
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)


def _bounce(p: float, limit: int) -> float:
    """Position reflected at the frame edges (a disc bounces instead of leaving)."""
    period = 2 * limit
    p = p % period
    return period - p if p > limit else p
