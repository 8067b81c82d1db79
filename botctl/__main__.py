"""`python -m botctl` and the `botctl` command.

Nothing is imported before the try: Ctrl-C while botctl itself loads (typer, polars... take a
noticeable moment on a busy machine) must end like Ctrl-C at any other time, with one line and
exit 130, never a KeyboardInterrupt traceback."""

import sys


def main() -> None:
    try:
        from botctl.cli.app import main as run

        run()
    except KeyboardInterrupt:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the exit
        try:
            sys.stderr.write("interrupted\n")
            sys.stderr.flush()
        finally:
            sys.exit(130)


if __name__ == "__main__":
    main()
