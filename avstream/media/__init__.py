"""Media helpers shared by the daemon and training: one resize, one down-mix, one resampler.

Training's cache and the daemon call the same functions, so a frame or a window the model sees
at run time is prepared exactly as it was during training. numpy, soxr, soundfile, PyAV and
OpenCV only: never torch.
"""
