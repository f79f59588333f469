"""Where results go: the sinks (JSON lines, the live view, MQTT, HTTP, the history database,
the service watchdog) and their servers. What they are given (records, the summary, the ``Sink``
contract) is ``avstream.results``."""
