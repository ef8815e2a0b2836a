"""The `backfills` group: any error ends in one line and a documented exit code."""

from __future__ import annotations

import logging
import os
import re
import sys

import click

from .. import stopping
from ..supermetrics.errors import ConfigError, MonitorError, UsageError, causes
from ..text import one_line
from .options import closed_pipe, fail


class Cli(click.Group):
    """Any error ends in one line on stderr and a documented exit code (docs/ingest.md "Exit codes");
    -v shows the traceback of an unexpected one."""

    def main(self, *args: object, **kwargs: object) -> object:
        stopping.install()  # Ctrl-C and SIGTERM stop any command at once: 130 and 143
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except KeyboardInterrupt:  # a stop outside a command's own work (parsing, printing)
            fail(stopping.interrupted())
        except click.UsageError as error:  # click says 2; sysexits says 64
            error.show()
            sys.exit(UsageError.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Abort:  # Ctrl-C at a click prompt
            fail(stopping.interrupted())

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MonitorError as error:
            fail(stopping.interrupted() if stopping.received() else error)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (KeyboardInterrupt, Exception) as exc:  # not SystemExit: a command's own exit code
            if stopping.received():  # whatever a library made of the stop on its way out
                fail(stopping.interrupted())
            if any(isinstance(cause, BrokenPipeError) for cause in causes(exc)):
                closed_pipe()
            known = known_error(exc)
            if known is not None:
                fail(known)
            if not isinstance(exc, Exception) or (ctx.obj and ctx.obj.get("verbose")):
                raise
            click.echo(
                f"backfills: unexpected error: {type(exc).__name__}: {one_line(str(exc))} "
                "(-v shows the traceback)",
                err=True,
            )
            sys.exit(1)


def known_error(exc: BaseException) -> MonitorError | None:
    """The monitor's error for a failure raised from inside a library: Ctrl-C anywhere (also
    wrapped by dlt), an unreadable config file."""
    for cause in causes(exc):
        if isinstance(cause, KeyboardInterrupt):
            return stopping.interrupted()
        toml = sys.modules.get("dlt.common.configuration.providers.toml")  # loaded if dlt raised
        if toml is not None and isinstance(cause, toml.TomlProviderReadException):
            problem = str(cause).splitlines()[-1]  # the TOML parser's words, with line and column
            if cause.file_name == "secrets.toml":  # not even one character of a secret
                problem = re.sub(r"'[^']*'", "'…'", problem)
            return ConfigError(f"cannot read .dlt/{cause.file_name}: {problem}")
        if isinstance(cause, MonitorError):
            return cause
    return None


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="supermetrics-backfill-monitor", prog_name="backfills")
@click.option("-v", "--verbose", is_flag=True, help="Log more, and show tracebacks of unexpected errors.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="BACKFILLS_LOG_FORMAT",
    help="json: every line printed becomes one JSON object (time, level, stream, message), for log "
    "shippers (env BACKFILLS_LOG_FORMAT).",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool, log_format: str) -> None:
    """Monitor Supermetrics backfills: poll the API into DuckDB history and report on it."""
    ctx.obj = {"verbose": verbose}
    if log_format == "json":
        from ..json_lines import install

        install()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    # dlt's own logging prints tracebacks of failures this command reports in one line; config
    # files and env vars still win. Telemetry stays off even when .dlt/ is not in the working dir.
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
