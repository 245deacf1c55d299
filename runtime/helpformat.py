"""The CLI's help formatter: ArgumentDefaultsHelpFormatter that names each default once.

A default is appended as "(default: X)" only when the help text does not already mention
one, and never for flags (store_true/store_false, --version) or a default of None."""
from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default in (None, argparse.SUPPRESS)
                or action.nargs == 0 or isinstance(action.default, bool)):
            return text
        return super()._get_help_string(action)
