"""`python -m mplint`: the same as the `mplint` command."""

from mplint.cli import main

if __name__ == "__main__":
    main(prog_name="mplint")
