"""The `tokenbrake` command. Each command parses its options, calls the library, prints."""

from __future__ import annotations

import sys

import click

from tokenbrake.config import ConfigError, load_config


@click.group()
@click.version_option(package_name="tokenbrake")
def main() -> None:
    """tokenbrake: a gateway and control plane for LLM spend."""


def _load(path: str):
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--config", "config_path", envvar="TOKENBRAKE_CONFIG", required=True, help="YAML config file (or TOKENBRAKE_CONFIG).")
@click.option("--host", default=None, help="Address to listen on [default: server.host, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: server.port, 4000].")
@click.option("--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def serve(config_path: str, host: str | None, port: int | None, log_level: str) -> None:
    """Run the gateway: OpenAI- and Anthropic-compatible endpoints in front of the configured upstreams."""
    from tokenbrake.server.app import build_app
    from tokenbrake.server.run import run
    from tokenbrake.state import AppState

    config = _load(config_path)
    try:
        state = AppState.build(config)  # fails here, before listening, on a model with no price
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    server = config.server
    click.echo(f"tokenbrake gateway on http://{host or server.host}:{port or server.port} ({len(config.models)} models)", err=True)
    run(build_app(config, state), host or server.host, port if port is not None else server.port,
        graceful_shutdown_s=server.graceful_shutdown_s, log_level=log_level)


@main.command("check-config")
@click.argument("config_path")
def check_config(config_path: str) -> None:
    """Validate a config file (and its prices) without starting anything."""
    from tokenbrake.pricing import PriceBook

    config = _load(config_path)
    try:
        PriceBook(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ok: {len(config.upstreams)} upstreams, {len(config.models)} models")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8400, show_default=True)
@click.option("--ttft-ms", type=float, default=0.0, show_default=True, help="Latency to the first token.")
@click.option("--tps", type=float, default=0.0, show_default=True, help="Output tokens per second (0: no delay).")
@click.option("--output-tokens", type=int, default=32, show_default=True, help="Default reply length in tokens.")
@click.option("--api-key", default=None, help="Require this key (default: accept any).")
def emulate(host: str, port: int, ttft_ms: float, tps: float, output_tokens: int, api_key: str | None) -> None:
    """Run an emulated upstream speaking the OpenAI and Anthropic wire formats.

    OpenAI clients use base URL http://HOST:PORT/v1, Anthropic clients http://HOST:PORT.
    Faults and reply shapes can be chosen per request with the X-Emulator header or an
    [[emulator: ...]] directive in the last user message (see the README).
    """
    from tokenbrake.emulator import EmulatorSettings, build_app
    from tokenbrake.server.run import run

    settings = EmulatorSettings(ttft_ms=ttft_ms, tokens_per_s=tps, output_tokens=output_tokens, api_key=api_key)
    click.echo(f"tokenbrake emulator on http://{host}:{port} (OpenAI: /v1, Anthropic: /)", err=True)
    run(build_app(settings), host, port, graceful_shutdown_s=1.0)


@main.command()
def demo() -> None:
    """Run the gateway in front of an emulated upstream and send it an application's traffic.

    Needs no API keys and no network; exits by itself.
    """
    from tokenbrake.demo import run_demo

    run_demo()


if __name__ == "__main__":
    sys.exit(main())
