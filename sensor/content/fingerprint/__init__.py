"""Fingerprint stage: what each object is and whether it is an encrypted container.

`fingerprinter.Fingerprinter` reads one object as it streams (sensor/content/objects.py drives
it); `identify` and `table` say what a head is; one module per format analyser (zip, sevenz,
rar, openpgp, sealed, pdf, cfb); `base` holds the values they all share.
"""
