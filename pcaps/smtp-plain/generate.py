"""smtp-plain (REAL): smtplib sends one plain-text message to aiosmtpd, one recipient.

The Subject is two RFC 2047 encoded words (Q then B); the body is 8bit UTF-8 with a few fake
patient rows. The whole body is the one object. (The case itself: smtpcase.run_plain_case.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import smtpcase

if __name__ == "__main__":
    smtpcase.run_plain_case(
        __file__, port=smtpcase.SMTP_PORT, msg_id="plain-20250701120000", patients_seed=51
    )
