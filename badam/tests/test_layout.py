"""The package's layering, read from its source: no import cycle, and a core that imports no engine."""

import ast
from pathlib import Path

import badam

PACKAGE = Path(badam.__file__).parent
CORE = [
    *("partition", "stacks", "moe", "schedule", "block", "holders", "precision", "tensor_step", "in_backward"),
    *("bread", "ratio", "adam_mini", "clipping"),
]
ADAPTERS = ["distributed", "fsdp", "zero3", "checkpoint", "hf", "hf_checkpoint"]
ENGINE_LIBRARIES = ["deepspeed", "accelerate", "transformers", "peft", "torch.distributed.checkpoint"]


def _runtime_imports(path: Path) -> set[str]:
    """Absolute names of what `path` imports when it runs (function bodies included, TYPE_CHECKING blocks not)."""
    package = "badam." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    package = package.rstrip(".")
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for statement in block.body
        for node in ast.walk(statement)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
    return names


def _graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = "badam." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        modules[name.removesuffix("__init__").rstrip(".")] = _runtime_imports(path)
    return {name: {dep for dep in deps if dep in modules and dep != name} for name, deps in modules.items()}


def test_no_module_imports_itself_back():
    graph = _graph()
    graph.pop("badam")  # the package's face imports everything it exports

    def cycle_from(node, path):
        for dep in graph.get(node, ()):
            if dep in path:
                return path[path.index(dep) :] + [dep]
            found = cycle_from(dep, path + [dep])
            if found:
                return found
        return None

    for module in graph:
        assert cycle_from(module, [module]) is None, " -> ".join(cycle_from(module, [module]))


def test_the_core_imports_no_engine_and_no_adapter():
    for module in CORE:
        imports = _runtime_imports(PACKAGE / f"{module}.py")
        engines = [lib for lib in ENGINE_LIBRARIES if any(i == lib or i.startswith(lib + ".") for i in imports)]
        adapters = [a for a in ADAPTERS if f"badam.{a}" in imports]
        assert not engines and not adapters, f"badam.{module} imports {engines + adapters}"


def test_the_graph_reader_sees_imports():
    # The tests above pass vacuously if the reader found nothing: it must see what we know is there.
    graph = _graph()
    assert {"badam.holders", "badam.partition", "badam.schedule"} <= graph["badam.block"]
    assert "badam.zero3" in graph["badam.distributed"] and "badam.block" not in graph["badam.zero3"]
