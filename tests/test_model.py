"""The paper's network: exact parameter counts, the in-model front end, and the split pieces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_run import module, succeeded

from training.config import PAPER, SMALL, ModelConfig
from training.model import AVSceneNet, count_parameters
from training.model.filterbanks import gammatone_weights, hz_to_erb_rate, mel_weights
from training.model.frontend import AudioFrontend

PAPER_COUNTS = {"audio": 321930, "visual": 14820170, "fusion": 272704, "total": 15414804}


def test_summary_cli_prints_paper_counts() -> None:
    out = succeeded(module("training", "summary", "--json")).stdout
    counts = json.loads(out)
    assert {k: counts[k] for k in PAPER_COUNTS} == PAPER_COUNTS
    assert counts["visual_backbone"] == 14714688  # torchvision vgg16().features


def test_demo_preset_keeps_paper_parameter_count() -> None:
    from training.config import DEMO

    assert count_parameters(AVSceneNet(DEMO))["total"] == PAPER_COUNTS["total"]


def test_vgg_parameter_names_match_torchvision() -> None:
    names = [k for k in AVSceneNet(PAPER).visual.encoder.backbone.state_dict()]
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert names == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]


def reference_gammatone_power(n_fft: int, sample_rate: int, n_bands: int) -> np.ndarray:
    """Power weights of the same ERB-spaced bands from the PyPI ``Gammatone`` package (Ellis'
    fft2gammatonemx, Heeris' port): amplitude weights, squared. Its centres are
    ``erb_space(f_lowest, nyquist, n)``; ours are n + 2 ERB-spaced points from 0 Hz to Nyquist
    without the ends, so its lowest centre is the second-to-last point of
    ``erb_space(0, nyquist, n + 1)``."""
    from gammatone.fftweight import fft_weights
    from gammatone.filters import erb_space

    nyquist = sample_rate / 2
    lowest = erb_space(0.0, nyquist, n_bands + 1)[-2]
    amplitude, _ = fft_weights(n_fft, sample_rate, n_bands, 1, lowest, nyquist, n_fft // 2 + 1)
    return np.asarray(amplitude, dtype=np.float64) ** 2


# The two lowest bands are narrower than one STFT bin and the top two touch Nyquist, where
# Ellis' pole-zero response and our magnitude formula part ways; everything between is compared.
EDGE_BANDS = 2
REFERENCE_WEIGHT_ATOL = 0.01


def test_frontend_matches_torch_stft_and_the_reference_filterbank() -> None:
    cfg = SMALL
    fe = AudioFrontend(cfg)
    torch.manual_seed(3)
    wave = torch.randn(1, 2, cfg.window_samples) * 0.1
    x = torch.nn.functional.pad(wave[0, :1], (fe.pad, fe.pad))
    ref = torch.stft(x, fe.n_fft, fe.hop, window=torch.hann_window(fe.n_fft), center=False,
                     return_complex=True).abs() ** 2  # (1, bins, frames)
    spec = torch.nn.functional.conv1d(x[None], fe.stft_kernel, stride=fe.hop)[0]
    power = spec[: fe.n_bins] ** 2 + spec[fe.n_bins:] ** 2
    torch.testing.assert_close(power, ref[0], rtol=1e-3, atol=1e-4)
    out = fe(wave)
    assert out.shape == (1, 3, cfg.n_bands, cfg.audio_frames) == (1, 3, 32, 50)
    assert float(out.min()) == pytest.approx(-1.0) and float(out.max()) == pytest.approx(1.0, abs=1e-5)
    # Channel L of the module's output is an affine map (min-max scaling) of the dB band
    # energies that torch.stft and the reference filterbank give: fit the map, check the rest.
    weights = reference_gammatone_power(fe.n_fft, cfg.sample_rate, cfg.n_bands)
    bands_ref = 10 * np.log10(weights @ ref[0].double().numpy() + 1e-10)
    middle = slice(EDGE_BANDS, cfg.n_bands - EDGE_BANDS)
    got = out[0, 0, middle].double().numpy().ravel()
    want = bands_ref[middle].ravel()
    (scale, offset), *_ = np.linalg.lstsq(np.stack([want, np.ones_like(want)], 1), got, rcond=None)
    assert scale > 0
    np.testing.assert_allclose(got, scale * want + offset, atol=0.02)


def test_mono_input_is_duplicated() -> None:
    torch.manual_seed(0)
    model = AVSceneNet(SMALL).eval()
    mono = torch.randn(2, 1, SMALL.window_samples) * 0.1
    with torch.no_grad():
        a = model.audio(mono)
        b = model.audio(mono.repeat(1, 2, 1))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_paper_shapes_through_the_audio_branch() -> None:
    model = AVSceneNet(PAPER).eval()
    with torch.no_grad():
        probs, steps = model.audio(torch.randn(2, 2, PAPER.window_samples) * 0.1)
    assert probs.shape == (2, 10) and steps.shape == (2, 5, 128)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))


def test_forward_is_the_composition_of_the_split_pieces() -> None:
    torch.manual_seed(1)
    model = AVSceneNet(SMALL).eval()
    wave = torch.randn(3, 2, SMALL.window_samples) * 0.1
    frames = torch.randint(0, 256, (3, 5, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = model(wave, frames)
        ap, st = model.audio(wave)
        feats = model.encode_frames(frames.reshape(15, 64, 64, 3)).reshape(3, 5, -1)
        vis, early, final = model.head(feats, st, ap)
    for a, b in ((out.final, final), (out.early, early), (out.audio, ap), (out.visual, vis)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("n_fft", "sample_rate", "n_bands"), [(1920, 48000, 64), (640, 16000, 32)])
def test_gammatone_bands_match_the_reference_package(n_fft: int, sample_rate: int,
                                                     n_bands: int) -> None:
    """Centre frequencies and band shapes against the PyPI Gammatone package (paper: 40 ms at
    48 kHz, 64 bands; SMALL: 16 kHz, 32 bands)."""
    from gammatone.filters import erb_space

    ours = gammatone_weights(n_fft, sample_rate, n_bands)
    assert ours.shape == (n_bands, n_fft // 2 + 1)
    ref = reference_gammatone_power(n_fft, sample_rate, n_bands)
    middle = slice(EDGE_BANDS, n_bands - EDGE_BANDS)
    np.testing.assert_allclose(ours[middle], ref[middle], atol=REFERENCE_WEIGHT_ATOL)
    # Centres: at 1-Hz resolution each band peaks at the reference's ERB-spaced centre.
    fine = gammatone_weights(sample_rate, sample_rate, n_bands)
    centres_ref = np.sort(erb_space(0.0, sample_rate / 2, n_bands + 1)[:-1])
    np.testing.assert_allclose(fine.argmax(axis=1), centres_ref, atol=0.5)
    assert hz_to_erb_rate(centres_ref[0]) == pytest.approx(hz_to_erb_rate(sample_rate / 2)
                                                            / (n_bands + 1))


def test_mel_bands_are_triangles_of_equal_area() -> None:
    m = mel_weights(1920, 48000, 64)
    assert m.shape == (64, 961) and np.all(m.sum(axis=1) > 0)
    # Slaney normalisation: each triangle's area over frequency is 1 (2 / width x width / 2);
    # bands narrower than a bin are sampled too coarsely to integrate, so only the upper half.
    area = m.sum(axis=1) * 48000 / 1920
    np.testing.assert_allclose(area[32:], 1.0, rtol=0.02)


def test_config_round_trip_and_clear_errors() -> None:
    assert ModelConfig.from_dict(json.loads(json.dumps(SMALL.to_dict()))) == SMALL
    with pytest.raises(ValueError, match="frames_per_window"):
        PAPER.replace(fusion_pool=(2, 2))
    with pytest.raises(ValueError, match="expected 'gammatone' or 'mel'"):
        PAPER.replace(filterbank="cqt")
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({"colour": "red"})
