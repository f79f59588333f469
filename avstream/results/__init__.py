"""What a run produced, apart from where it goes (``avstream.outputs``, the sinks).

``counters``: the ``Counters`` a line and the summary carry, merged once from each stage's own
count record; ``records``: what the run is made of (``RunInfo``) and one result per window
(``HopRecord``); ``summary``: the exit summary; ``reporter``: the stage that turns a pipeline's
windows into records and hands them to the sinks; ``sink``: what a sink is given.

The stream core (``avstream.stream``, the pipeline apart) never imports this package, and this
package imports no sink: counts flow from the stages to the reporter, records from the reporter
to the sinks, and nothing flows back.
"""
