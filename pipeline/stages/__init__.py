"""Stage drivers: one module per ``dvc.yaml`` stage (and per command that writes files).

A stage module is the only kind of code that opens input files, writes stores, or handles
checkpoints and signals; it reads its params sections, calls the domain packages (``devices``,
``crossbar``, ``training``, ``sweep``, ``figures``) which work on dataclasses and arrays only, and
writes its outputs atomically. ``cli.py`` parses the command line and calls ``run`` of a stage.

``STAGES`` maps each ``dvc.yaml`` stage to its module; the code dependencies of a stage in
``dvc.yaml`` are generated from what that module imports (``python -m pipeline.stages.deps``).
"""

from __future__ import annotations

# dvc.yaml stage name -> module under pipeline/stages/
STAGES = {
    "fit": "fit",
    "instantiate": "instantiate",
    "train": "train",
    "evaluate": "evaluate",
    "sweep": "sweep",
    "figures": "figures",
}
# dvc.yaml stage name -> the function of pipeline/cli.py that its command runs
COMMANDS = {
    "fit": "device_fit",
    "instantiate": "array_init",
    "train": "train",
    "evaluate": "evaluate",
    "sweep": "sweep",
    "figures": "figures",
}
