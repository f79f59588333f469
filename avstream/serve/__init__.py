"""Many streams in one process or on Ray: ``avstream serve`` (config, batcher, stream runner,
Ray Serve backend)."""
