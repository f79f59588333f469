"""Time constants of the model's world, built from each other (units in the names).

These describe the paper's data (TAU AV 2021): 1-s examples, 5 video frames a second, a
40 ms / 20 ms STFT giving 50 audio frames a second. Everything else is derived and checked.
"""

from typing import Final


def exact_div(x: int, y: int) -> int:
    """Integer division that refuses to round: a silent remainder would misalign audio and video."""
    if x % y != 0:
        raise ValueError(f"{x} is not divisible by {y}: the time grid would not line up")
    return x // y


MS_PER_S: Final[int] = 1000  # milliseconds in a second: the one definition of the package
TAU_SAMPLE_RATE_HZ: Final[int] = 48_000  # the dataset's native rate (24-bit binaural WAV)
TAU_CLIP_SECONDS: Final[int] = 10  # every TAU clip is 10.00 s
WINDOW_SECONDS: Final[int] = 1  # the DCASE metric and the model both work on 1-s segments
VIDEO_FPS: Final[int] = 5  # frames sampled per second of video
FRAMES_PER_WINDOW: Final[int] = WINDOW_SECONDS * VIDEO_FPS  # 5 frames per 1-s window
FRAME_PERIOD_MS: Final[int] = exact_div(MS_PER_S, VIDEO_FPS)  # 200 ms between sampled frames
STFT_WINDOW_MS: Final[int] = 40
STFT_HOP_MS: Final[int] = 20
AUDIO_FRAMES_PER_SECOND: Final[int] = exact_div(MS_PER_S, STFT_HOP_MS)  # 50 spectrogram frames / s
SEGMENTS_PER_CLIP: Final[int] = exact_div(TAU_CLIP_SECONDS, WINDOW_SECONDS)  # 10 eval segments
