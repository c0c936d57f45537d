"""``python -m reeldb`` runs the CLI."""

from reeldb.cli import main

if __name__ == "__main__":
    main()
