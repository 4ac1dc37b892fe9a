"""Test helper for the command line's error path: a bad input is one ``error: ...`` line, never a traceback."""

from __future__ import annotations

import re


def one_error_line(capsys, *names: str) -> str:
    """The one ``error: ...`` line on stderr (after any progress bars), naming each of ``names``."""
    err = capsys.readouterr().err
    line = re.split(r"[\r\n]", err.strip())[-1]
    assert line.startswith("error: ") and err.count("error:") == 1 and "Traceback" not in err, err
    for name in names:
        assert name in line, line
    return line
