"""Content stage: transferred objects in, finished file objects and their facts out.

`router.py` is the entry: it takes every protocol's objects (the object contract of
sensor/protocols/base.py) and hands their bytes to the engines: `entity.py` for message bodies
(content codings, multipart), `mime.py` for whole Internet messages, `objects.py` for the file
object itself (SHA-256, size, type, optional extraction). Results come back as values with the
object's start attached, for the protocol's log to write.

A new object consumer (fingerprints, classifiers) attaches here, where the bytes of every
object stream past; it never needs to know which protocol carried them.
"""
