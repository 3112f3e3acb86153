"""``python -m serving``: the same as ``mlplat serve``."""

from serving.cli import serve

if __name__ == "__main__":
    serve(prog_name="python -m serving")
