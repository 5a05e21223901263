"""One error type for everything the user can fix.

The CLI prints a `DistilkitError` as a single line (`distilkit: error: ...`) and exits with status 2;
anything else is a bug and keeps its traceback. Messages name the file, line or field and say what to do.
"""


class DistilkitError(Exception):
    """A problem with the user's input (data, model, options) that the user can fix."""
