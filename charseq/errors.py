"""The one exception type a user should ever see.

Library code raises `CharseqError` for anything the user can fix (a missing file, a bad
option, a corrupt checkpoint). The CLI turns it into one line on stderr and a non-zero exit;
anything else is a bug and is reported as one.
"""


class CharseqError(Exception):
    """A problem with the user's input, files or options, explained in one line."""

    exit_code = 1


class Interrupted(CharseqError):
    """Training was stopped by Ctrl-C or SIGTERM after writing a checkpoint."""

    exit_code = 130
