"""Stream addresses as they may be shown: :func:`mask_credentials` hides what unlocks a camera.

Camera URLs carry their password (``rtsp://admin:secret@cam/``) or a key in the query
(``video.cgi?user=admin&pwd=secret``). The address is kept as given, since reconnecting needs
it, but every place that shows or logs one shows it masked, through this one function.
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)$", re.DOTALL)
# query parameters whose values unlock something (password, pwd, passwd, token, api_key, auth, sig...)
_SECRET_PARAM = re.compile(
    r"([?&;](?:[^=&;#]*?(?:pass|pwd|token|key|secret|auth|sig|credential)[^=&;#]*)=)([^&;#]*)", re.IGNORECASE
)


def mask_credentials(url: str) -> str:
    """``url`` with its password, and the values of secret-looking query parameters, as ``***``.

    A user name is kept when a password follows it (``user:***@``); user info without a colon
    is masked whole (``***@``), since services put tokens there. Anything before the last ``@``
    of the address (before its query) counts as user info: masking too much is safe, too
    little is not. Text that is not a URL (``/dev/video0``) comes back unchanged.

    Example:
        >>> mask_credentials("rtsp://admin:hunter2@10.0.0.5:554/stream1")
        'rtsp://admin:***@10.0.0.5:554/stream1'
    """
    match = _SCHEME.match(url)
    if match is None:
        return url
    scheme, rest = match.groups()
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        shown = f"{user}:***" if colon and user and "/" not in user else "***"
        rest = f"{shown}@{rest[at + 1 :]}"
    return scheme + _SECRET_PARAM.sub(lambda m: m.group(1) + "***", rest)
