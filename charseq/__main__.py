"""`python -m charseq`: the charseq command, for where its script is not on PATH (a `pip install
--user` whose bin folder is not on it, or to name the Python that runs it)."""

from charseq.cli import main

if __name__ == "__main__":
    main()
