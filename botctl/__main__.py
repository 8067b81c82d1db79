"""`python -m botctl` and the `botctl` command.

Nothing is imported before the try: Ctrl-C while botctl itself loads (typer, polars... take a
noticeable moment on a busy machine) must end like Ctrl-C at any other time, with one line and
exit 130, never a KeyboardInterrupt traceback."""

import sys

EXIT_INTERRUPTED = 130  # botctl.cli.app's code for Ctrl-C, and only for it


def main() -> None:
    try:
        from botctl.cli.app import main as run

        run()
    except KeyboardInterrupt:
        _exit_interrupted(announce=True)
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED:  # the CLI caught Ctrl-C and said so
            _exit_interrupted(announce=False)
        _skip_last_collection()
        raise
    _skip_last_collection()


def _skip_last_collection() -> None:
    """The command is done: the interpreter's exit would still walk every object it made
    looking for cycles to free (40-80 ms after a big backtest), for a process about to end."""
    import gc

    gc.freeze()


def _exit_interrupted(*, announce: bool) -> None:
    """Exit 130 now. Not through the interpreter's normal exit: CPython remembers a Ctrl-C
    that arrived while an extension ran Python code through PyRun_String (it happens while
    libraries load) and, at exit, kills the process with SIGINT (status -2) even though the
    KeyboardInterrupt was handled. Everything was unwound by now: transactions rolled back
    or committed, files closed by their `with` blocks; only the std streams need a flush."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the exit
    try:
        if announce:
            sys.stderr.write("interrupted\n")
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except (OSError, ValueError):
        pass  # a closed or broken stream: nothing more to say
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
