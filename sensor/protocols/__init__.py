"""Protocols stage: reassembled bytes of a flow in, typed events out.

`layer.py` is the app layer of a flow (detection, the one parser, the client/server flip,
tunnels, detaching) and `TcpApp` drives it from a TCP flow's two streams; `base.py` holds the
contracts every parser shares (the object contract, the events that steer the layer, the facts
for the meter); `expect.py` links connections that one flow announces for another (FTP data).

A new protocol is one module here: a `detect(direction, data)` function and a sans-IO parser
(`feed`/`gap`/`eof` returning a union of typed events; a transition table when it has more than
a handful of states, as smtp.py and ftp.py have), plus its log in sensor/outputs/ and one
`Registration` line in sensor/pipeline.py. Its transferred objects use the object contract of
base.py, so the content stage reads them without knowing the protocol.
"""
