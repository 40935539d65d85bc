"""The `scaler` command line: parses options, calls the library, renders the results.

A thin root app (`app.py`) and one module per command. Run as the console script `scaler`
(`scaler.entry`), or `python cli.py` from a checkout.
"""

from __future__ import annotations

import math
import os
import re
import sys
import traceback

import typer

from scaler.cli import calibrate, candidates, compare, flops, options, report, scale, search, train, worker  # noqa: F401  (register commands)
from scaler.cli.app import app
from scaler.errors import DEBUG_ENV, Interrupted, ScalerError, interrupted_by_user

INTERRUPTED = 130  # exit code of a command stopped with Ctrl-C


# Library parameter names whose flag is not `--` + the name with dashes.
FLAG_OF = {"num_classes": "--classes"}


def _command(args: list[str]) -> typer.core.TyperCommand | None:
    """The command `args` name: its first argument that is not an option (the root app's
    only options are flags)."""
    first = next((a for a in args if not a.startswith("-")), None)
    return typer.main.get_command(app).commands.get(first)  # type: ignore[attr-defined]


def user_message(exc: ScalerError, args: list[str]) -> str:
    """The error's line, led by the flag of the parameter at fault where the user typed it (by
    the environment variable where that gave the value; by nothing where a default or a value
    read from a study folder is at fault: no line names a flag the user did not give). A
    refused value the library names by its parameter ('batch_size = 1 is not allowed', as the
    Python API is called) is named by the flag as typed ('--batch-size 1 is not allowed')."""
    if exc.param is None:
        return str(exc)
    flag = FLAG_OF.get(exc.param, "--" + exc.param.replace("_", "-").replace(" ", "-"))
    parameter = _option(args, flag)
    if parameter is None:
        return str(exc)
    if not any(arg.partition("=")[0] in parameter.opts for arg in args):
        envvar = parameter.envvar if isinstance(parameter.envvar, str) and os.environ.get(parameter.envvar) else None
        return f"{envvar}: {exc}" if envvar else str(exc)
    names = {n for name in (exc.param, flag[2:]) for n in (name, name.replace("_", " "), name.replace("-", " "), name.replace("-", "_"))}
    refused = re.fullmatch(rf"({'|'.join(map(re.escape, names))})(?: = | )(.+?) (is not (?:allowed|available).*)", str(exc), flags=re.DOTALL)
    typed = (_given_value(args, parameter.opts) or "").strip()
    if refused is None or _number(refused.group(2)) is not None and not _same_number(typed, refused.group(2)):
        return f"{flag}: {exc}"  # the library's words where its value is not the one typed (one derived from it)
    value = typed if _number(typed) is not None else refused.group(2)
    return f"{flag} {value} {refused.group(3)}"


def _number(text: str) -> float | None:
    """`text` as a number, None where it is not one ('0' and '0.0' are one number)."""
    try:
        return float(text)
    except ValueError:
        return None


def _same_number(typed: str, named: str) -> bool:
    """Whether the typed text and the library's spelling are one number ('nan' and 'NaN' too,
    which no comparison of floats calls equal)."""
    a, b = _number(typed), _number(named)
    return a is not None and b is not None and (a == b or math.isnan(a) and math.isnan(b))


# typer's messages for a value that is not a number, and what the option takes instead
NUMBER_WORDS = {
    "Input should be a valid integer": "a whole number",
    "Input should be a valid number": "a number",
}

# Options whose own check refuses an empty value and names what is allowed.
CHECKED_WHEN_EMPTY = {"--data", "--name", "--study", "--strategies"}


def _empty_value(args: list[str]) -> str | None:
    """The line refusing an empty argument, None when there is none. Checked before parsing:
    a path option would otherwise read '' as '.', the current folder, and a preset or
    coefficients as their default."""
    for index, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if arg.startswith("--") and equals and not value:
            option: str | None = name
        elif arg == "":
            option = args[index - 1] if index > 0 and _takes_value(args, args[index - 1]) else None
        else:
            continue
        if option in CHECKED_WHEN_EMPTY:
            continue
        help_hint = f"`{_help_command(args)}`"
        if option is None:
            return f"an argument is empty; {help_hint} says what it takes"
        parameter = _option(args, option)
        if parameter is None or not parameter.required:
            leave_out = f" or leave {option} out"
        else:  # a required option can be left out only where its environment variable gives it
            leave_out = f" or leave {option} out and set {parameter.envvar}" if isinstance(parameter.envvar, str) else ""
        return f"{option}: the value is empty; give one ({help_hint} says what it takes){leave_out}"
    return None


def _option(args: list[str], option: str) -> typer.core.TyperOption | typer.core.TyperArgument | None:
    """The parameter of the command `args` name that `option` sets (None when none does)."""
    command = _command(args)
    return None if command is None else next((p for p in command.params if option in p.opts), None)


def _takes_value(args: list[str], option: str) -> bool:
    """Whether `option` is an option of the command `args` name that takes a value."""
    parameter = _option(args, option)
    return parameter is not None and not getattr(parameter, "is_flag", True)


def _help_command(args: list[str]) -> str:
    """`scaler COMMAND --help` for the command `args` name (`scaler --help` when none)."""
    command = _command(args)
    return f"scaler {command.name} --help" if command is not None else "scaler --help"


def _parser_message(exc: Exception, args: list[str]) -> str:
    """The parser's error as one line, with what is allowed where click leaves it out: the
    commands for an unknown command, the command's help for an unknown option or a missing
    argument or option."""
    message = exc.format_message().replace("Value error, ", "")  # type: ignore[attr-defined]
    if message.startswith("No such command"):
        commands = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
        return f"{message} Commands: {', '.join(commands)}."
    if message.startswith(("No such option", "Missing argument", "Missing option")):
        end = "" if message.endswith((".", "?")) else "."
        return f"{message}{end} See `{_help_command(args)}`."
    for pydantic_words, kind in NUMBER_WORDS.items():  # typer's wording names neither the value nor the fix
        if pydantic_words in message:
            opts = getattr(getattr(exc, "param", None), "opts", [])
            given = _given_value(args, opts)
            what = f"{given!r} is not {kind}" if given is not None else f"it takes {kind}"
            return f"{message.partition(':')[0]}: {what}; see `{_help_command(args)}`"
    return message


def _given_value(args: list[str], opts: list[str]) -> str | None:
    """The value last given to an option called any of `opts` ('--phis 1-3', '--phis=1-3')."""
    given = None
    for index, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if equals and name in opts:
            given = value
        elif arg in opts and index + 1 < len(args):
            given = args[index + 1]
    return given


def main(argv: list[str] | None = None) -> int:
    """Run one command (see `_run`); with --debug, its worker processes show tracebacks too,
    for this call only. --debug is taken anywhere on the line (`scaler flops b9 --debug`, as
    the error hint invites), not only before the command."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if debug:  # the root's option: moved before the command, where the parser takes it
        args = ["--debug", *(a for a in args if a != "--debug")]
    previous = os.environ.get(DEBUG_ENV)
    if debug:
        os.environ[DEBUG_ENV] = "1"  # worker processes inherit it
    try:
        return _run(args, debug)
    finally:
        if previous is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = previous


def _run(args: list[str], debug: bool) -> int:
    """Run the app; map errors to one line and an exit code (2 usage, 1 runtime)."""
    options.drop_notes()
    empty = _empty_value(args)
    if empty is not None:
        print(f"error: {empty}", file=sys.stderr)
        return 2
    try:
        result = app(args=args, prog_name="scaler", standalone_mode=False)
        if result == INTERRUPTED:  # typer turns a Ctrl-C inside a command into exit code 130
            print("interrupted", file=sys.stderr)
        return result if isinstance(result, int) else 0
    except Interrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    except ScalerError as exc:
        if debug:  # the traceback as well, the exit code unchanged
            traceback.print_exc()
        print(f"error: {user_message(exc, args)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        if interrupted_by_user(exc):  # a library's clean-up failed while Ctrl-C was handled
            print("interrupted", file=sys.stderr)
            return INTERRUPTED
        if type(exc).__name__ == "NoArgsIsHelpError":  # `scaler` alone: the help, not an error line
            print(exc.format_message(), file=sys.stderr)  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            # The parser's own errors (unknown option, wrong type): one line, exit 2.
            # (typer's validation prefixes some with pydantic's "Value error, ": noise to a user)
            print(f"error: {_parser_message(exc, args)}", file=sys.stderr)
            return int(exc.exit_code)
        if debug:
            traceback.print_exc()
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


__all__ = ["app", "main"]
