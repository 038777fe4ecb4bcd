"""The command line's error plumbing: every problem the user can fix is one line on stderr and exit status 1
(2 for usage errors, as click does); a stop the user asked for (Ctrl-C, SIGTERM) is one line without
"Error:" and exit status 130; a bug shows a one-line summary, and the full traceback only with
`charseq --debug ...` or CHARSEQ_DEBUG=1."""

from __future__ import annotations

import os
import sys
import traceback

import click


LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # everything str.splitlines() breaks at


def one_line(message: str) -> str:
    """An error message kept to one line even when it quotes a file name or text with line breaks."""
    return "".join(c.encode("unicode_escape").decode() if c in LINE_BREAKS else c for c in message.strip())


def _click_message(e: click.exceptions.ClickException) -> str:
    """Click's message for `e`, with the choices of a missing argument (`charseq data get`) listed on
    the line: click puts each on a line of its own, which one_line would show as literal \\n\\t."""
    message = e.format_message()
    if isinstance(e, click.exceptions.MissingParameter):
        message = message.replace("\n\t", " ")
    return message


COMMANDS_RUN = "charseq.commands"  # ctx.meta key: the commands this invocation runs (grid adds its COMMAND)


def _command_options(ctx) -> set[str]:
    """Every option name (--out, -o, ...) of the commands this invocation runs: an error's advice may
    name only these."""
    return {name for command in ctx.meta.get(COMMANDS_RUN, []) for p in command.params
            if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}


SIGPIPE_STATUS = 141  # 128 + SIGPIPE: the status of `seq 1000 | head -1`'s seq


def stop_quietly_on_a_closed_pipe():
    """The reader of the output went away (`charseq generate ... | head`): stop without a word, as
    Unix tools do. Standard output goes to /dev/null first, so that Python's own flush at exit does
    not fail on the closed pipe too (the recipe of Python's signal module documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(SIGPIPE_STATUS)


class CharseqGroup(click.Group):
    """Turns library errors into one-line messages instead of tracebacks."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        # Click shows a usage error as four lines (usage, hint, blank, error); charseq keeps
        # every error to one line, with the hint folded in.
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:  # bare `charseq`: the help
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.ClickException as e:
            ctx = getattr(e, "ctx", None)  # usage errors know their command: point at its --help
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            click.echo(one_line(f"Error: {_click_message(e)}{hint}"), err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("Error: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def parse_args(self, ctx, args):
        # --debug is charseq's own option, but users add it where the error happened: after the
        # command (`charseq train-lm ... --debug`). It is moved before it (not past a `--`).
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[1:end]:
            args = ["--debug", *(a for i, a in enumerate(args) if not (a == "--debug" and i < end))]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta.setdefault(COMMANDS_RUN, []).append(command)  # for the options its errors may advise
        return name, command, rest

    def invoke(self, ctx):
        from charseq.errors import CharseqError, Interrupted

        debug = ctx.params.get("debug") or os.environ.get("CHARSEQ_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except Interrupted as e:
            # The user asked for the stop (Ctrl-C, SIGTERM), and the run is saved: not an error, so no
            # "Error:"; the exit status still says the command did not finish.
            click.echo(one_line(e.shown(_command_options(ctx).__contains__)), err=True)
            sys.exit(e.exit_code)
        except CharseqError as e:
            if debug:
                traceback.print_exc()
            error = click.ClickException(e.shown(_command_options(ctx).__contains__))
            error.exit_code = e.exit_code
            raise error from None
        except KeyboardInterrupt as e:  # asked for too: said as click's own "Aborted!" is, without "Error:"
            click.echo(str(e) or "interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except BrokenPipeError:
            stop_quietly_on_a_closed_pipe()
        except OSError as e:
            if debug:
                traceback.print_exc()
            where = f": {e.filename}" if getattr(e, "filename", None) else ""
            raise click.ClickException(f"{e.strerror or e}{where}") from None
        except Exception as e:  # a bug: say so in one line, keep the traceback for --debug
            if isinstance(e, ValueError) and "null byte" in str(e):  # the OS refuses such paths
                raise click.ClickException("a file name contains a NUL byte") from None
            if isinstance(e, UnicodeEncodeError):  # e.g. a lone surrogate in a file name
                raise click.ClickException(
                    f"{e.object[e.start:e.end]!r} in {e.object[:60]!r} is not valid Unicode ({e.reason})") from None
            if debug:
                traceback.print_exc()
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise click.ClickException(
                f"internal error ({type(e).__name__}: {first}); rerun with --debug for details") from None
