"""One module per ``avstream`` sub-command; each registers itself on ``avstream.cli.app``."""
