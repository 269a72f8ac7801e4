"""The one exception type that reaches the user as a one-line message."""


class UserError(Exception):
    """Bad input from the user: unknown name, out-of-range value, missing or malformed file.

    The message must name the problem *and* the fix, on one line. The CLI prints it as
    ``mixsweep: error: <message>`` and exits with status 2, without a traceback unless
    ``--debug`` (or ``MIXSWEEP_DEBUG=1``) is given.
    """


class Terminated(BaseException):
    """SIGTERM (a scheduler's time limit or cancellation, ``kill``), raised in the main thread like
    Ctrl-C's KeyboardInterrupt, so that the run under way cleans up on its way out (its lock-only
    folder is removed) and the command ends with one line. A BaseException: no ``except Exception``
    (a run's own failure handling) may record it as the run's outcome."""
