"""One module per ``avstream`` sub-command, each a plain function: ``avstream.cli.register``
adds them to the command by name."""
