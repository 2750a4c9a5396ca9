"""smtp-submission-2525 (REAL): as smtp-plain, but the server listens on port 2525.

Nothing about the port says SMTP: the sensor must recognise the protocol by content
(the 220 greeting, EHLO), as mail submission on non-standard ports does in practice.
(The case itself: smtpcase.run_plain_case, with its own message id and fake rows.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pcaps._lib import smtpcase

if __name__ == "__main__":
    smtpcase.run_plain_case(
        __file__, port=2525, msg_id="submission-20250701120000", patients_seed=58
    )
