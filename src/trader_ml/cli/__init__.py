"""The ``trader-ml`` command: one subcommand per stage, each a thin layer over the package."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence

from trader_ml import __version__
from trader_ml.cli import backtest, daily, data, models, monitor, report, train
from trader_ml.errors import TraderMLError


def build_parser(
    script: dict[str, str] | None = None, defaults: dict[str, dict[str, object]] | None = None
) -> argparse.ArgumentParser:
    """The command line. A wrapper script that runs one subcommand names it and its own
    defaults (``script={"train": "training/train.py"}``, ``defaults={"train": {...}}``), so that
    command's help and errors speak of the script and show the defaults it really uses."""
    # allow_abbrev=False everywhere: a typo such as --max-day must fail, not become --max-days.
    parser = argparse.ArgumentParser(
        prog=next(iter(script.values())) if script else "trader-ml",
        description="Train, version and serve regime and health models.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"trader-ml {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    made: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        prog = (script or {}).get(name)
        kwargs.setdefault("description", kwargs.get("help"))  # the command's own --help says what it is
        made[name] = commands.add_parser(name, allow_abbrev=False, **({"prog": prog} if prog else {}), **kwargs)
        return made[name]

    sub = argparse.Namespace(add_parser=command)

    data.add_commands(sub)
    train.add_commands(sub, (defaults or {}).get("train", {}))
    backtest.add_commands(sub)
    models.add_commands(sub)
    monitor.add_commands(sub)
    report.add_commands(sub)
    daily.add_commands(sub)
    for name, values in (defaults or {}).items():
        made[name].set_defaults(**values)  # after add_argument: help's %(default)s shows these
    parser.set_defaults(subcommands=made)
    return parser


def refuse_unknown(parser: argparse.ArgumentParser, unknown: list[str]) -> None:
    """Exit with the subcommand's own usage, naming the unknown flags and the nearest real one
    (``--epoch`` -> ``--epochs``), not the top-level usage argparse would print."""
    known = [o for action in parser._actions for o in action.option_strings]
    hints = []
    for i, word in enumerate(unknown):
        flag = word.split("=", 1)[0]
        if flag == "--model-type" and "--regime-type" in known:
            # The single-model commands' flag: train has one per model.
            value = word.split("=", 1)[1] if "=" in word else (unknown[i + 1] if i + 1 < len(unknown) else "")
            hints.append(_model_type_hint(value))
        elif flag.startswith("-"):
            near = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
            if near:
                hints.append(f"did you mean {near[0]}?")
    parser.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" ({'; '.join(hints)})" if hints else ""))


def _model_type_hint(value: str) -> str:
    if value in ("autoencoder", "vae"):
        return f"train chooses each model's type apart: did you mean --health-type {value}?"
    if value in ("gru", "transformer"):
        return f"train chooses each model's type apart: did you mean --regime-type {value}?"
    return "train chooses each model's type apart: --regime-type gru|transformer, --health-type autoencoder|vae"


def missing_module_message(error: ModuleNotFoundError) -> str:
    if error.name in ("torch", "onnx", "sklearn", "tqdm", "matplotlib", "scipy"):
        return f"No module named '{error.name}': training needs the train extra: pip install 'trader-ml[train]'"
    if error.name in ("boto3", "botocore"):
        return f"No module named '{error.name}': S3 stores need the aws extra: pip install 'trader-ml[aws]'"
    raise error


def main(
    argv: Sequence[str] | None = None, script: str | None = None, defaults: dict[str, object] | None = None
) -> int:
    """Run a command. A wrapper script passes its own name (``script``) and defaults, which its
    command's help then shows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []  # options for a scheduled job
    named = script and argv
    parser = build_parser({argv[0]: script} if named else None, {argv[0]: defaults or {}} if named else None)
    args, unknown = parser.parse_known_args(argv[: len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    if unknown:
        refuse_unknown(args.subcommands[args.command], unknown)
    args.extra = extra
    try:
        return args.func(args)
    except TraderMLError as e:
        print(f"{script or f'trader-ml {args.command}'}: error: {e}", file=sys.stderr)
        return e.exit_code
    except ModuleNotFoundError as e:
        print(f"trader-ml {args.command}: error: {missing_module_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{script or f'trader-ml {args.command}'}: interrupted before it finished", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
