"""The package's layout (docs/architecture.md): every module imports only from its own stage or an
earlier one, so data flows one way and no stage reaches into the command line."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import trader_ml

PACKAGE = Path(trader_ml.__file__).parent

# In flow order; a module belongs to the stage with the longest matching prefix.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "trader_ml",
            "trader_ml.schema",
            "trader_ml.errors",
            "trader_ml.safejson",
            "trader_ml.store",
            "trader_ml.baselines",
            "trader_ml.exposure",
            "trader_ml.stats",
            "trader_ml.trading_days",
            "trader_ml.health_inputs",
        ),
    ),
    ("data", ("trader_ml.data",)),
    ("models", ("trader_ml.models",)),
    ("training", ("trader_ml.training",)),
    ("pages", ("trader_ml.pages",)),
    ("registry", ("trader_ml.registry",)),
    ("serving", ("trader_ml.serving",)),
    ("backtest", ("trader_ml.backtest",)),
    ("monitor", ("trader_ml.monitor",)),
    ("release", ("trader_ml.release",)),
    ("command line", ("trader_ml.cli", "trader_ml.__main__")),
)
# Serving ships alone in the Lambda bundle (numpy and onnxruntime, no pandas or torch): of the
# earlier stages it may use only these.
SERVING_USES = ("foundation", "registry", "serving")


def stage_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank is None:
        raise AssertionError(f"{module} belongs to no stage: add it to STAGES and docs/architecture.md")
    return rank


def imported_modules(source: str) -> set[str]:
    """Every trader_ml module a source imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "trader_ml")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "trader_ml":
            for alias in node.names:  # from trader_ml import registry: the module registry
                name = f"{node.module}.{alias.name}"
                found.add(name if importlib.util.find_spec(node.module) and is_module(name) else node.module)
    return found


def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def back_edges(module: str, source: str) -> list[str]:
    own = STAGES[stage_of(module)][0]
    edges = []
    for target in sorted(imported_modules(source)):
        theirs = STAGES[stage_of(target)][0]
        if stage_of(target) > stage_of(module) or (own == "serving" and theirs not in SERVING_USES):
            edges.append(f"{module} ({own}) imports {target} ({theirs})")
    return edges


def package_modules() -> dict[str, str]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path.read_text()
    return modules


def test_no_module_imports_from_a_later_stage():
    edges = [edge for module, source in package_modules().items() for edge in back_edges(module, source)]
    assert edges == []


def test_a_back_edge_is_caught():
    """The check itself can fail: training loading a served model, serving importing torch code,
    a stage reaching into the command line."""
    assert back_edges("trader_ml.training.gate", "from trader_ml.serving.artifacts import RegimeModel")
    assert back_edges("trader_ml.serving.daily", "def f():\n    from trader_ml.training import labels\n")
    assert back_edges("trader_ml.release.job", "from trader_ml.cli.train import load_table")
    assert back_edges("trader_ml.data.ingest", "import trader_ml.models.regime")
    assert not back_edges("trader_ml.release.judge", "from trader_ml.serving.predictor import current_model")


def import_cycles(sources: dict[str, str]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (every import counts,
    those inside functions and under TYPE_CHECKING too): Tarjan's strongly connected components."""
    graph = {m: sorted(t for t in imported_modules(src) if t in sources and t != m) for m, src in sources.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_no_two_modules_import_each_other():
    assert import_cycles(package_modules()) == []


def test_a_cycle_inside_one_stage_is_caught():
    planted = {
        "trader_ml.release.job": "from trader_ml.release.manifest import describe",
        "trader_ml.release.manifest": "def f():\n    from trader_ml.release.judge import judge\n",
        "trader_ml.release.judge": "from trader_ml.release.job import run_training",
    }
    assert import_cycles(planted) == [sorted(planted)]
    assert import_cycles({**planted, "trader_ml.release.judge": ""}) == []


def test_the_architecture_doc_names_every_stage_in_order_and_every_folder():
    """The rule's paragraph lists the stages in bold, in STAGES' order; the layout block names
    each stage's folder or modules."""
    import re

    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    rule = doc.split("## The rule", 1)[1].split("\n\n", 2)[1]
    assert re.findall(r"\*\*([a-z ]+)\*\*", rule) == [name for name, _ in STAGES]
    layout = doc.split("src/trader_ml/", 1)[1].split("```", 1)[0]
    for _, prefixes in STAGES:
        for prefix in prefixes:
            last = prefix.split(".")[-1]
            if last in ("trader_ml", "__main__"):
                continue
            assert f"{last}/" in layout or f"{last}.py" in layout, f"{prefix} is not in docs/architecture.md's layout"


MAX_FUNCTION_LINES = 60  # a recipe longer than this is split into named steps


def long_functions(source: str, name: str) -> list[str]:
    """Every function of a source longer than MAX_FUNCTION_LINES, as 'name:line function (n lines)'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_package_is_longer_than_sixty_lines():
    found = [
        line
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in long_functions(path.read_text(), str(path.relative_to(PACKAGE)))
    ]
    assert found == []


def test_a_long_function_is_caught():
    planted = "def recipe():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    assert long_functions(planted, "planted.py") == [f"planted.py:1 recipe ({MAX_FUNCTION_LINES + 1} lines)"]
    assert long_functions("def short():\n    return 1\n", "ok.py") == []


def test_the_lambda_bundle_is_the_serving_folder_and_what_it_imports():
    """No list of bundled files is kept by hand: every module of serving/ ships, with the
    foundation and registry modules they import, and nothing of a stage serving may not use."""
    from trader_ml.release.bundle import serving_files

    shipped = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in serving_files(PACKAGE)}
    shipped = {name.removesuffix(".__init__") for name in shipped}
    assert {m for m in package_modules() if m.startswith("trader_ml.serving")} <= shipped
    assert {"trader_ml.registry", "trader_ml.schema", "trader_ml.store"} <= shipped
    assert sorted(m for m in shipped if STAGES[stage_of(m)][0] not in SERVING_USES) == []
