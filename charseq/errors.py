"""The one exception type a user should ever see.

Library code raises `CharseqError` for anything the user can fix (a missing file, a bad
option, a corrupt checkpoint). The CLI turns it into one line on stderr and a non-zero exit;
anything else is a bug and is reported as one.
"""

import errno
import os
import re

OPTION = re.compile(r"--[a-z][a-z0-9-]*")
OPTION_AND_VALUE = re.compile(rf"({OPTION.pattern})(?: (\S+))?")  # "--unknown skip" in a remedy


def flag(name: str) -> str:
    """A setting's parameter name as the command line spells it (time_budget: --time-budget), the
    way every message names it."""
    return "--" + name.replace("_", "-")


class CharseqError(Exception):
    """A problem with the user's input, files or options, explained in one line.

    Every public function raises it for what the caller can fix (a missing file, a setting out of
    range, a run that exists, a damaged checkpoint); `str(error)` is the message, naming the keyword
    arguments of the call (`greedy=True`) where the command line names its options. An argument of
    the wrong type raises its subclass `charseq.errors.ArgumentTypeError` (also a `TypeError`), a
    number out of its range `charseq.errors.ArgumentValueError` (also a `ValueError`)."""

    # `remedies` are what the user can do about it, each naming the options it needs, as the command
    # line spells the settings ("--errors replace", "--encoding to name its encoding"). The same library
    # function serves commands that lack some of those options (`classify --input` reads a file but has
    # no --errors), so the message keeps them apart: str() lists every remedy, `shown()` only those
    # whose options the command at hand has. A Python caller of the public functions reads them in its
    # keywords instead (charseq.settings.in_python_terms), a studio request in its fields.

    exit_code = 1

    def __init__(self, message: str = "", *remedies: str):
        super().__init__(message, *remedies)
        self.message, self.remedies = message, remedies

    def shown(self, has_option=lambda option: True) -> str:
        """The message with the remedies whose every --option passes `has_option`."""
        usable = [r for r in self.remedies if all(has_option(o) for o in OPTION.findall(r))]
        return self.message + (f" (use {' or '.join(usable)})" if usable else "")

    def __str__(self) -> str:
        return self.shown()


class Interrupted(CharseqError):
    """Stopped by Ctrl-C or SIGTERM: training, after writing a checkpoint; a download, with nothing cached."""

    exit_code = 130


class InterruptedBeforeCheckpoint(KeyboardInterrupt):
    """Ctrl-C before a new run's first checkpoint, which left nothing at its --out: still a
    KeyboardInterrupt to a Python caller, and its message says so on the command line."""


class WriteError(CharseqError, OSError):
    """A file that could not be written (a full disk, a read-only directory, a quota), named with the
    system's reason; it is an OSError too, with the original errno."""

    def __init__(self, path, error: OSError, *remedies: str):
        CharseqError.__init__(self, f"cannot write {path} ({error.strerror or error})", *remedies)
        self.errno, self.strerror, self.filename = error.errno, error.strerror, str(path)

    def __reduce__(self):  # picklable like the CharseqError it is
        return (Exception.__new__, (type(self),), self.__dict__)


# Why a write fails, by the system's error: no room left, or no permission to write there.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def write_remedy(error: Exception, where: str) -> str:
    """What frees a write into `where` that failed with `error` (an OSError, or an error of TensorFlow's
    whose message carries the system's words): room, permission, or either when it cannot tell."""
    code = getattr(error, "errno", None)
    said = [c for c in NO_ROOM + NOT_WRITABLE if code == c or (code is None and os.strerror(c) in str(error))]
    if said and all(c in NO_ROOM for c in said):
        return "free space"
    if said and all(c in NOT_WRITABLE for c in said):
        return f"make {where} writable"
    return f"free space (or make {where} writable)"


class ArgumentTypeError(CharseqError, TypeError):
    """A Python argument of the wrong type (`units="16"`, a model where a run directory goes),
    refused at the public function's boundary, naming the parameter, the type it takes and what it got."""


class ArgumentValueError(CharseqError, ValueError):
    """A number outside its range, NaN or infinite (`--lr nan`, `length_penalty=inf`), named with its range."""


def scores_not_numbers() -> CharseqError:
    """What decoding says when a model's next-token scores are nan: weights a run's updates overflowed
    (sgd at a huge --lr can diverge with the loss still finite)."""
    return CharseqError("the model's scores for the next character are not numbers (its weights diverged in "
                        "training), so nothing can be decoded from it; train it again with a lower --lr")
