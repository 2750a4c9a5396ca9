"""Outputs stage: pipeline values in, EVE-style JSON records out.

`eve.py` writes the common header of every record, the `flow`, `anomaly` and `stats` records,
the JSON-lines writer, and defines `ProtocolLog`, the contract of a protocol's log. Each
protocol has its log here (http.py, smtp.py, ftp.py, tls.py, ssh.py): it turns the protocol's
events into records and joins them with what the content stage found in the protocol's objects.
`files.py` writes `file` records, `meter.py` the meter's `volume` and `finding` records,
`digest.py` keeps what a replay's printed summary lists. Every field is in events.schema.json.

A new output (a new record type, syslog, metrics) is a module here, fed by the pipeline's sinks
or by the stage whose values it writes; a new protocol's log subclasses `ProtocolLog`.
"""
