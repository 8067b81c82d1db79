"""Entry point of the single-file build (scripts/build-binary.sh)."""

from botctl.__main__ import main

if __name__ == "__main__":
    main()
