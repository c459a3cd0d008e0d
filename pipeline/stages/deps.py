"""Code dependencies of every ``dvc.yaml`` stage, derived from what the stage imports.

A stage runs ``python -m pipeline <command>``: that executes ``pipeline/__init__.py``,
``pipeline/__main__.py``, the module-level imports of ``pipeline/cli.py`` and those of the
command's function there (``COMMANDS``), and then the stage's
module ``pipeline/stages/<module>.py`` with everything it imports, at any depth (imports inside
functions included: they run when the stage runs). A stage's code dependencies are exactly those
files; listing fewer lets ``dvc repro`` serve stale numbers after a code change, listing more
reruns stages for nothing.

    python -m pipeline.stages.deps            # print each stage's code dependencies
    python -m pipeline.stages.deps --check    # exit 1 if dvc.yaml differs (the test suite runs this)
    python -m pipeline.stages.deps --write    # rewrite the pipeline/ entries of dvc.yaml's deps

A folder stands for all of its files when the stage imports every module in it (so the list stays
short); the check expands folders, so a module added to such a folder without being imported is
reported. The analysis is static (``ast``): ``importlib``-style dynamic imports must be listed in
``DYNAMIC`` below.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from . import COMMANDS, STAGES

PACKAGE = "pipeline"
ROOT = Path(__file__).resolve().parents[2]  # the repository (parent of pipeline/)

# modules imported by name at run time (pkgutil discovery): importing module -> glob of the
# module names it discovers in its own package
DYNAMIC: dict[str, str] = {"pipeline.figures": "fig*_*"}
# the command line runs these functions of cli.py for every command (their imports count)
CLI_ALWAYS = ("_root", "main", "_sigterm_as_interrupt")


def module_path(module: str, root: Path = ROOT) -> Path | None:
    """``pipeline.a.b`` → ``pipeline/a/b.py`` or ``pipeline/a/b/__init__.py`` (None: not ours)."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = root.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _walk(tree: ast.AST, top_level_only: bool, keep: tuple[str, ...] = ()):
    """Import nodes of a module (with ``top_level_only``: not those inside functions, except the
    functions named in ``keep``)."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) \
                and getattr(node, "name", None) not in keep:
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(module: str, root: Path = ROOT, top_level_only: bool = False,
                     keep: tuple[str, ...] = ()) -> set[str]:
    """Modules of the package that ``module`` imports (not transitively); with ``top_level_only``
    only module-level imports and those inside the functions named in ``keep``."""
    path = module_path(module, root)
    if path is None:
        return set()
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if _is_package(path) else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk(tree, top_level_only, keep):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if node.level:
            parts = package.split(".")
            base_parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        found.add(base)
        for alias in node.names:  # `from . import x` imports the submodule x when there is one
            if module_path(f"{base}.{alias.name}", root) is not None:
                found.add(f"{base}.{alias.name}")
    if module in DYNAMIC:
        found.update(f"{package}.{p.stem}" for p in path.parent.glob(DYNAMIC[module] + ".py"))
    return {m for m in found if module_path(m, root) is not None}


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def closure(entries: list[str], root: Path = ROOT, shallow: dict[str, tuple[str, ...]] | None = None) -> set[str]:
    """Every package module executed when ``entries`` are imported (with their parent packages).
    A module in ``shallow`` contributes only its module-level imports and those of the functions
    listed for it."""
    shallow = shallow or {}
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        m = todo.pop()
        if m in seen or module_path(m, root) is None:
            continue
        seen.add(m)
        todo.extend(_parents(m))
        todo.extend(imported_modules(m, root, top_level_only=m in shallow, keep=shallow.get(m, ())))
    return seen


def stage_modules(stage: str, root: Path = ROOT) -> set[str]:
    """The package modules a ``dvc.yaml`` stage executes."""
    entry = f"{PACKAGE}.stages.{STAGES[stage]}"
    if module_path(entry, root) is None:
        raise KeyError(f"stage {stage!r}: module {entry} not found")
    cli = f"{PACKAGE}.cli"
    return closure([f"{PACKAGE}.__main__", cli, entry], root, shallow={cli: CLI_ALWAYS + (COMMANDS[stage],)})


def _files(modules: set[str], root: Path) -> set[str]:
    return {module_path(m, root).relative_to(root).as_posix() for m in modules}


def _all_py(folder: Path, root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


def compress(files: set[str], root: Path = ROOT) -> list[str]:
    """Sorted dependency list: a folder whose every module is in ``files`` stands for them."""
    out: set[str] = set(files)
    folders = sorted({Path(f).parent for f in files if Path(f).parent != Path(PACKAGE)},
                     key=lambda p: len(p.parts))
    for folder in folders:
        inside = _all_py(root / folder, root)
        if inside and inside <= files and not any(str(folder).startswith(o.rstrip("/") + "/") for o in out
                                                  if not o.endswith(".py")):
            out -= inside
            out = {o for o in out if not o.startswith(folder.as_posix() + "/")}
            out.add(folder.as_posix())
    return sorted(out)


def expand(deps: list[str], root: Path = ROOT) -> set[str]:
    """The package source files a list of dvc deps covers (folders expanded)."""
    files: set[str] = set()
    for d in deps:
        if not (d == PACKAGE or d.startswith(PACKAGE + "/")):
            continue
        p = root / d
        files |= _all_py(p, root) if p.is_dir() else {d}
    return files


def expected(root: Path = ROOT) -> dict[str, list[str]]:
    return {stage: compress(_files(stage_modules(stage, root), root), root) for stage in STAGES}


def declared(root: Path = ROOT) -> dict[str, list[str]]:
    """The deps of each stage in ``dvc.yaml`` (``foreach``/``matrix`` stages: their template)."""
    import yaml

    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, st in stages.items():
        body = st.get("do", st)
        out[name] = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
    return out


def problems(root: Path = ROOT) -> list[str]:
    """Differences between dvc.yaml and the imports, one line each (empty: exact)."""
    want = expected(root)
    have = declared(root)
    lines = []
    for stage in sorted(set(want) | set(have)):
        if stage not in have:
            lines.append(f"dvc.yaml: stage {stage} missing")
            continue
        if stage not in want:
            lines.append(f"dvc.yaml: stage {stage} has no module in pipeline.stages.STAGES")
            continue
        got, exp = expand(have[stage], root), _files(stage_modules(stage, root), root)
        for f in sorted(exp - got):
            lines.append(f"dvc.yaml: stage {stage} imports {f} but does not depend on it")
        for f in sorted(got - exp):
            lines.append(f"dvc.yaml: stage {stage} depends on {f} but does not import it")
    return lines


def rewrite(text: str, want: dict[str, list[str]]) -> str:
    """``dvc.yaml`` text with each stage's ``pipeline/`` deps replaced by ``want`` (other deps, the
    order of the file and its comments are kept)."""
    lines = text.splitlines()
    out: list[str] = []
    stage = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 2 and stripped.endswith(":") and not stripped.startswith(("-", "#")):
            stage = stripped[:-1]
        if stripped == "deps:" and stage in want:
            out.append(line)
            item = " " * indent + "- "
            i += 1
            others = []
            while i < len(lines) and lines[i].startswith(item):
                dep = lines[i][len(item):].strip()
                if not (dep == PACKAGE or dep.startswith(PACKAGE + "/")):
                    others.append(lines[i])
                i += 1
            out.extend(others)
            out.extend(item + d for d in want[stage])
            continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        lines = problems()
        for line in lines:
            print(line)
        if lines:
            print("run: python -m pipeline.stages.deps --write")
        return 1 if lines else 0
    if "--write" in argv:
        path = ROOT / "dvc.yaml"
        path.write_text(rewrite(path.read_text(), expected()))
        return 0
    for stage, deps in expected().items():
        print(f"{stage}:")
        for d in deps:
            print(f"  - {d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
