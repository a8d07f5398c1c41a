"""What every `audience-sync` command shares: the app, consoles, settings, error handling."""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings, load_settings, secret_keys
from audience_sync.connectors.registry import platform_names
from audience_sync.exceptions import AudienceSyncError, ConfigurationError
from audience_sync.log import configure_logging
from audience_sync.services import database, tenants
from audience_sync.services.tenants import DEFAULT_TENANT_SLUG
from audience_sync.sync.context import SyncService
from audience_sync.sync.service import build_service

app = typer.Typer(
    help="Audience Sync: push CDP segments to ad platforms as custom audiences.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
import_app = typer.Typer(help="Import data into the built-in CDP.", no_args_is_help=True)
segments_app = typer.Typer(help="CDP segments.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(segments_app, name="segments")
connections_app = typer.Typer(help="Ad platform accounts.", no_args_is_help=True)
audiences_app = typer.Typer(help="Platform audiences and their syncs.", no_args_is_help=True)
jobs_app = typer.Typer(help="Sync jobs: show one, cancel one.", no_args_is_help=True)
keys_app = typer.Typer(help="A tenant's API keys.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(connections_app, name="connections")
app.add_typer(audiences_app, name="audiences")
app.add_typer(jobs_app, name="jobs")
tenants_app.add_typer(keys_app, name="keys")

# Piped output gets wide lines rather than an 80-column wrap, so ids stay whole and grep-able.
out = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

__all__ = ["DEFAULT_TENANT_SLUG"]


def platform_help(what: str) -> str:
    """An option's help naming the registered platforms (those registered when the CLI is
    built); the value given is read by `domain.platforms.platform_key`: an unknown name is
    refused with the known ones."""
    return f"{what} One of: {', '.join(platform_names())}."


TenantOption = Annotated[
    str, typer.Option("--tenant", help="Tenant slug.", envvar="AUDIENCE_SYNC_TENANT")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
IdArgument = typer.Argument(help="The id, or its first characters (at least 4) when unique.")

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)


@dataclass
class Context:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]


@functools.cache
def context() -> Context:
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.environment == "production")
    secret_keys(settings)  # validated now; in development, generated once with a warning
    engine = database.open_engine(settings)
    return Context(settings, engine, database.sessions(engine))


def migrated_context() -> Context:
    ctx = context()
    if not database.is_migrated(ctx.engine):
        raise ConfigurationError(
            "The database has no schema yet: run `audience-sync db upgrade` first."
        )
    return ctx


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Expected failures print one clear line and exit non-zero; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AudienceSyncError as exc:
            err.print(f"[red]Error:[/red] {exc}", highlight=False)
        except OSError as exc:  # unreadable file, full disk, permission denied
            err.print(f"[red]Error:[/red] {exc.strerror or exc}: {exc.filename}", highlight=False)
        except KeyboardInterrupt:
            err.print(
                "Interrupted. Work already committed is kept; run the command again to finish."
            )
            raise typer.Exit(130) from None
        except (OperationalError, ProgrammingError) as exc:
            url = make_url(context().settings.effective_database_url)
            err.print(
                f"[red]Database error[/red] at {url.render_as_string(hide_password=True)}: "
                f"{exc.orig or exc}".splitlines()[0],
                highlight=False,
            )
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException):
            raise  # the command's own exit code, and typer's usage errors
        except Exception as exc:  # shown without its message: see _unexpected
            _unexpected(command.__name__, exc)
        raise typer.Exit(2)

    return wrapper


def _unexpected(command: str, exc: Exception) -> None:
    """Any other failure: its type and where, never its message nor a traceback with values.

    Messages of database and encoding errors quote the data they failed on (an SQL error's
    parameters are other customers' rows of the same chunk); only the code's frames are logged,
    at DEBUG."""
    where = traceback.extract_tb(exc.__traceback__)[-1:]
    place = f" at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno}" if where else ""
    log.error("%s failed: unexpected %s%s", command, type(exc).__name__, place)
    log.debug("frames:\n%s", "".join(traceback.format_tb(exc.__traceback__)))
    err.print(
        f"[red]Error:[/red] unexpected {type(exc).__name__}{escape(place)}; its message is not "
        "shown because it may quote your data. Work already committed is kept; run the command "
        "again, and report the error if it repeats.",
        highlight=False,
    )


def service(ctx: Context) -> SyncService:
    """The sync engine (and the services' dependencies) for these settings."""
    return build_service(ctx.settings, ctx.engine)


def tenant_id(ctx: Context, slug: str) -> int:
    """The tenant's id; the default tenant is created on first use."""
    return tenants.tenant_id(ctx.factory, slug)


def print_json(data: Any) -> None:
    """One line of JSON on stdout (ids, dates and enums as text)."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
