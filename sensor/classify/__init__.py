"""Classification stage: what the text inside an object says (identifiers, health data,
canary tokens, exact matches of known records), scored per object.

In: the text chunks of every object and container member (sensor/content/text/). Out: per
object, counts per identifier type (keyed hashes, never clear values), record counts,
categories and a severity, for the `sensitive_content`, `canary` and `edm_match` findings.
"""
