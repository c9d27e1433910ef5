"""The one place where secrets are taken out of text before anyone sees it.

Credentials reach compatcheck inside the URLs and commands it is given: a password in a database
URL's userinfo or in SQLAlchemy's ``?password=``, a token in a metrics URL's query, a signed store
URL's ``sig=``, a registry URL with ``user:pass@``. Every URL or description that can end up in a
report, a snapshot file, a progress line, an error or the hook's log goes through
:func:`mask_secrets`, and the writers of those outputs apply it once more to what they emit, so a
message that forgot to mask still leaks nothing. One function, so that what counts as a secret is
decided once: two maskers drift (ours did: one masked ``?password=``, the other did not).

What is masked (the value becomes ``***``):

* the password of any ``scheme://user:password@host``, and over http(s) a userinfo without
  ``:`` (a token passed as the user name);
* the value of any ``name=value`` pair whose name contains ``pass``, ``pwd``, ``secret``,
  ``token``, ``sig``, ``key``, ``auth``, ``credential``, ``session`` or ``cookie`` (any case),
  after a ``?``, ``&``, ``;``, ``#``, whitespace or the start of the text: URL queries and
  fragments, libpq ``key=value`` strings, ``--password=x`` arguments;
* the credentials of an ``Authorization:`` header and a ``Bearer`` token.

Masking twice gives the same text, and text without secrets comes back unchanged.
"""

from __future__ import annotations

import re

MASK = "***"

#: Parameter names whose values are secrets (substring, any case): over-masking a harmless
#: ``keyword=`` costs nothing, missing ``X-Amz-Security-Token=`` leaks a credential.
_SECRET_NAME = r"[\w.\-]*?(?i:pass|pwd|secret|token|sig|key|auth|credential|session|cookie)[\w.\-]*"
#: The value runs to the next delimiter, less the punctuation that closes the sentence or the
#: bracket around the URL: ``[URL?token=x] waiting``, ``URL?token=x: refused`` keep their ``]``
#: and ``:`` (eaten, a progress line lost its bracket and an error its colon).
_PAIR_RE = re.compile(
    rf"(?:^|(?<=[?&;#,(\s]))({_SECRET_NAME})="
    r"([^\s&;#\"'<>`]+?)(?=[\]):,.]*(?:[\s&;#\"'<>`]|$))"
)
#: ``scheme://userinfo@``: the userinfo runs to the last ``@`` before the path.
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\s\"'<>`]*)@")
#: ``Authorization: <scheme> <credentials>`` and a long ``Bearer <token>`` (the phrase "bearer
#: token" in a message is left alone).
_AUTH_RE = re.compile(
    r"(?i)\b(authorization\s*[:=]\s*(?:bearer\s+|basic\s+)?|bearer\s+)"
    r"(?=[A-Za-z0-9._~+/\-]{12,})[^\s\"'<>`]+"
)


def _userinfo(match: re.Match[str]) -> str:
    scheme, info = match.group(1), match.group(2)
    user, colon, _ = info.partition(":")
    if colon:
        return f"{scheme}{user}:{MASK}@" if user else f"{scheme}{MASK}@"
    # A bare user name is shown (``postgres@``), except over http(s), where a token passed as the
    # user name (``https://<token>@host``) is the convention.
    return f"{scheme}{MASK}@" if scheme.lower().startswith("http") else match.group(0)


def mask_secrets(text: object) -> str:
    """``text`` (a URL, a command, a message, a rendered report) with every secret as ``***``.

    Non-strings are shown with ``str()`` first: a SQLAlchemy ``URL`` renders its password as
    ``***`` already, and its ``?password=`` is masked here.
    """
    s = text if isinstance(text, str) else str(text)
    if "@" in s:
        s = _USERINFO_RE.sub(_userinfo, s)
    if "=" in s:
        s = _PAIR_RE.sub(lambda m: f"{m.group(1)}={MASK}", s)
    if "earer" in s or "uthorization" in s:
        s = _AUTH_RE.sub(lambda m: f"{m.group(1)}{MASK}", s)
    return s
