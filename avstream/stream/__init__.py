"""The stream core: media in, windows, features, inference and labels out.

From a source's timestamped chunks to one label per hop: ``conform`` (sample rate, channels),
``buffers`` (the audio ring and the frame slots), ``windows`` (the window and hop arithmetic),
``assembly`` (complete windows), ``arrivals`` (when a window's media was there; the drop rule),
``features`` (frame features encoded once), ``pipeline`` (the loop that ties them, configured by
``config.PipelineConfig``), ``smoothing`` (probabilities to a stable label) and ``clock`` (the
wall clock of live capture and realtime replay). Each stage counts what it sees (``counts()``);
only the pipeline imports ``avstream.results`` (it hands each window to the reporter), and
nothing here imports an output or a command.
"""
