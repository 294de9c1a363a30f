"""`python -m badam.memory`: the command line of `badam.memory.cli`."""

from .cli import main

if __name__ == "__main__":
    main()
