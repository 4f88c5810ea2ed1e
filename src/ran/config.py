"""params.yaml: load, validate against the JSON schema, and resolve profiles and runs.

params.yaml is the single source of truth for the experiment matrix (README, "The workflow"). Everything that reads
it goes through `load_params`, so a typo is reported once, naming the key, before any job runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

# The schema lives with the workflow (workflow/schemas/); the package is installed editable from the repository.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"
RUN_DEFAULTS = {"attention": None, "learning": None, "mask": None, "noise": 0.0}
ATTENTION_DEFAULTS = {"mask": "encoder_decoder"}
# The fast recipe's optional training keys (docs/recipe.md) and the values that are the paper's protocol.
RECIPE_DEFAULTS = {"schedule": "step", "warmup": 0.0, "warmup_from": 0.1, "label_smoothing": 0.0, "ema": 0.0,
                   "ema_bn_batches": 100, "validation": 0}


def uses_fast_recipe(training: dict) -> bool:
    """Whether a training configuration sets any recipe key away from the paper's protocol."""
    return any(training.get(key, default) != default for key, default in RECIPE_DEFAULTS.items())


ALL_RUNS = "all"
# The code a job imports, as dvc.yaml lists it under `deps` and the Snakefile as inputs (file by file: Snakemake
# compares modification times, DVC hashes content); tests keep the two equal. Editing any of it reruns the job.
CODE_DEPENDENCIES = {
    "download": ("src/ran/data",),
    "prepare": ("src/ran/data",),
    "noise": ("src/ran/data",),
    "train": ("src/ran/config.py", "src/ran/data", "src/ran/models", "src/ran/runtime.py", "src/ran/train"),
    "evaluate": ("src/ran/config.py", "src/ran/data", "src/ran/evaluate.py", "src/ran/models", "src/ran/runtime.py",
                 "src/ran/train"),
    "tables": ("src/ran/records.py", "src/ran/report"),
    "figures": ("src/ran/records.py", "src/ran/report"),
    "report": ("src/ran/report",),
}


def code_files(paths, root: str | Path) -> list[str]:
    """`paths` (files and folders relative to `root`) as the sorted .py files they hold, relative to `root`."""
    root, found = Path(root), set()
    for entry in paths:
        path = root / entry
        found |= {str(f.relative_to(root)) for f in path.rglob("*.py")} if path.is_dir() else {str(entry)}
    return sorted(found)  # a profile's `runs: all` selects the whole matrix


class ConfigError(ValueError):
    """params.yaml does not satisfy the schema or the cross-key rules."""


def _key_path(path) -> str:
    return ".".join(str(part) for part in path) or "<top level>"


def did_you_mean(word: object, choices) -> str:
    """' (did you mean X?)' for the closest of `choices` to a misspelt `word`, '' when none is close."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _schema_places(schema: dict) -> dict[str, list[str]]:
    """Every key the schema allows, mapped to the dotted places it may stand (`profiles.<name>.iterations`)."""
    places: dict[str, list[str]] = {}

    def walk(node: object, path: list[str]) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:  # only local references (`#/$defs/...`) occur in the schema
            target = schema
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            walk(target, path)
        for key, sub in node.get("properties", {}).items():
            place = ".".join([*path, key])
            if place not in places.setdefault(key, []):
                places[key].append(place)
            walk(sub, [*path, key])
        walk(node.get("additionalProperties"), [*path, "<name>"])
        for branch in ("then", "else"):
            walk(node.get(branch), path)
        for alternative in node.get("anyOf", []) + node.get("oneOf", []):
            walk(alternative, path)

    walk(schema, [])
    return places


def _schema_problems(error, places: dict[str, list[str]]) -> list[str]:
    """One line per problem of a jsonschema error; an unknown key says where it belongs, a typo the closest name."""
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        lines = []
        for key in [key for key in error.instance if key not in allowed]:
            here = "a top-level key" if where == "<top level>" else f"a key of {where}"
            elsewhere = places.get(str(key), [])
            if elsewhere:
                lines.append(f"{key} is not {here}; it belongs under {' or '.join(elsewhere)}")
            else:
                lines.append(f"{key} is not {here}{did_you_mean(key, allowed)}; the keys there are "
                             f"{', '.join(allowed)}")
        return lines
    if error.validator == "enum" and isinstance(error.instance, str):
        return [f"{where}: {error.message}{did_you_mean(error.instance, error.validator_value)}"]
    return [f"{where}: {error.message}"]


def _invalid(source: str, problems: list[str]) -> ConfigError:
    """One line for one problem; a count, then one line per problem, for several."""
    if len(problems) == 1:
        return ConfigError(f"{source} is invalid: {problems[0]}")
    return ConfigError(f"{source} is invalid ({len(problems)} problems):\n" + "\n".join(f"  {p}" for p in problems))


def validate_params(params: dict, source: str = "params.yaml") -> dict:
    """Check `params` against the schema and the rules a schema cannot say; return it unchanged.

    `source` names where the values came from in the message (the Snakefile adds the command line's overrides).
    """
    import jsonschema  # imported here: the CLI's light commands should not pay for it

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(params), key=lambda e: list(e.path))
    if errors:
        places = _schema_places(schema)
        raise _invalid(source, [line for error in errors for line in _schema_problems(error, places)])
    problems = []
    if params["profile"] not in params["profiles"]:
        problems.append(f"profile: {params['profile']!r} is not one of {sorted(params['profiles'])}"
                        f"{did_you_mean(params['profile'], params['profiles'])}")
    noise = params["label_noise"]
    for run_id, run in params["runs"].items():
        level = run.get("noise", 0.0)
        if level and (run["dataset"] != noise["dataset"] or level not in noise["levels"]):
            problems.append(
                f"runs.{run_id}.noise: {level!r} needs label_noise.dataset == {run['dataset']!r} and the level "
                f"in label_noise.levels {noise['levels']}"
            )
    for name, profile in params["profiles"].items():
        if profile.get("checkpoint_every", 1) > profile["iterations"]:
            problems.append(f"profiles.{name}.checkpoint_every: larger than iterations ({profile['iterations']})")
        unknown = [run_id for run_id in _listed_runs(profile) if run_id not in params["runs"]]
        if unknown:
            problems.append(f"profiles.{name}.runs: {unknown} are not runs of the matrix (`runs:` defines "
                            f"{len(params['runs'])}: {', '.join(params['runs'])})")
    if problems:
        raise _invalid(source, problems)
    return params


def _listed_runs(profile: dict) -> list[str]:
    return [] if profile["runs"] == ALL_RUNS else list(profile["runs"])


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key repeated in one mapping is an error (YAML 1.2 forbids it; PyYAML and
    Snakemake keep the last copy silently, DVC refuses it), so both engines always read the same matrix."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)  # resolves `<<` merge keys first, so a merged key is not a duplicate
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (first at line "
                              f"{seen[key] + 1}): keep one copy")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> object:
    """Parse a YAML file strictly (duplicate keys are errors); errors name the file and the line."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except RecursionError:  # a hand-written file nested hundreds of levels deep, not a config
        raise ConfigError(f"{path} is nested too deeply to be a params file: restore it from git") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate a params file."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"params path {path} is not a regular file (a folder or a device): pass the params.yaml "
                          f"file itself")
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    params = read_yaml(path)
    if not isinstance(params, dict):
        raise ConfigError(f"{path} holds a {type(params).__name__}, expected a mapping of params.yaml's keys")
    return validate_params(params)


# Keys the Snakemake command line may set (`--config profile=smoke allow_long=true`): every job gets the profile as
# `--profile`, and allow_long only concerns the workflow's own plan guard. Every other key is read by the jobs from
# params.yaml on disk, so an override of it would change the plan and the DAG but not what the jobs do.
COMMAND_LINE_KEYS = ("profile", "allow_long")
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_ABSENT = object()  # a key that one of two compared documents lacks


def flag(params: dict, key: str) -> dict:
    """`params` with `params[key]`, when a word (`--config allow_long=true` arrives as the string 'true'), as a bool."""
    value = params.get(key)
    if isinstance(value, str) and value.lower() in TRUE_WORDS | FALSE_WORDS:
        return {**params, key: value.lower() in TRUE_WORDS}
    return params


def differing_keys(resolved: object, on_disk: object, path: tuple = ()) -> list[str]:
    """Dotted key paths whose values differ between two parsed YAML documents (leaves, or a key only one has)."""
    if isinstance(resolved, dict) and isinstance(on_disk, dict):
        keys = list(resolved) + [key for key in on_disk if key not in resolved]
        return [found for key in keys
                for found in differing_keys(resolved.get(key, _ABSENT), on_disk.get(key, _ABSENT), (*path, key))]
    return [] if resolved == on_disk else [_key_path(path)]



def check_overrides(resolved: dict, on_disk: dict, params_path: str = "params.yaml") -> None:
    """Refuse command-line overrides (Snakemake's `--config`, `--configfile`) of keys the jobs read from disk."""
    changed = [key for key in differing_keys(resolved, on_disk) if key.split(".")[0] not in COMMAND_LINE_KEYS]
    if changed:
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise ConfigError(f"--config/--configfile change {shown}, but the jobs read {params_path} from disk and would "
                          f"not see it: set `{changed[0]}:` in {params_path} instead (the command line may set only "
                          f"{' and '.join(COMMAND_LINE_KEYS)})")


def check_local_copies(params: dict, profile: str | None = None, base_dir: str | Path = ".") -> None:
    """A configured `datasets.D.local` that the profile will read must exist (checked before any job runs)."""
    name = profile_name(params, profile)
    if params["profiles"][name]["data"] != "official":
        return  # a synthetic profile never reads a local copy
    for dataset in needed_datasets(params, name):
        local = params["datasets"][dataset].get("local")
        if local is None:
            continue
        path = Path(local).expanduser()
        path = path if path.is_absolute() else Path(base_dir) / path
        if not path.exists():
            raise ConfigError(f"datasets.{dataset}.local in params.yaml is {local!r}, but {path} does not exist: fix "
                              f"the path (relative paths start at params.yaml's folder) or remove the key to download "
                              f"from datasets.{dataset}.url")


def profile_name(params: dict, profile: str | None = None) -> str:
    """`profile`, or params.yaml's `profile` key; an error naming the defined profiles when it is unknown."""
    name = profile or params["profile"]
    if name not in params["profiles"]:
        raise ConfigError(f"unknown profile {name!r}{did_you_mean(name, params['profiles'])}; params.yaml defines "
                          f"{sorted(params['profiles'])}")
    return name


def resolve_profile(params: dict, profile: str | None = None) -> dict:
    """The training section with the profile's overrides applied, plus the profile's own keys and name.

    The profile's run selection is left out: it says which runs train, not how, so selecting another run never
    changes (and never reruns) a run that was already selected.
    """
    name = profile_name(params, profile)
    overrides = {key: value for key, value in params["profiles"][name].items() if key != "runs"}
    return {**params["training"], **overrides, "name": name}


def selected_runs(params: dict, profile: str | None = None) -> list[str]:
    """Ids of the runs the profile trains (`runs: all` or a list), in params.yaml order."""
    chosen = params["profiles"][profile_name(params, profile)]["runs"]
    return [run_id for run_id in params["runs"] if chosen == ALL_RUNS or run_id in chosen]


def not_selected_reason(params: dict, profile: str | None, run_id: str) -> str | None:
    """Why the profile does not train `run_id`, or None when it does (train and evaluate both ask this)."""
    if run_id in selected_runs(params, profile):
        return None
    name = profile_name(params, profile)
    return f"profile {name!r} does not select run {run_id!r} (profiles.{name}.runs)"


def needed_datasets(params: dict, profile: str | None = None) -> list[str]:
    """Datasets the profile's selected runs train on, in params.yaml order (the others are not downloaded)."""
    used = {params["runs"][run_id]["dataset"] for run_id in selected_runs(params, profile)}
    return [dataset for dataset in params["datasets"] if dataset in used]


def run_config(params: dict, run_id: str) -> dict:
    """One row of `runs` with its defaults filled in and its id attached."""
    if run_id not in params["runs"]:
        raise ConfigError(f"unknown run {run_id!r}; params.yaml defines {len(params['runs'])} runs: "
                          f"{', '.join(sorted(params['runs']))}")
    row = params["runs"][run_id]
    defaults = RUN_DEFAULTS if row["network"] == "resnet164" else {**RUN_DEFAULTS, **ATTENTION_DEFAULTS}
    return {"run": run_id, **defaults, **row, "noise": float(row.get("noise", 0.0))}


def all_runs(params: dict) -> list[dict]:
    """Every run of the matrix, resolved, in params.yaml order."""
    return [run_config(params, run_id) for run_id in params["runs"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran runs", description="Validate params.yaml and list its runs.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile to resolve (default: the file's `profile` key)")
    parser.add_argument("--json", action="store_true", help="print runs and the resolved profile as JSON")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        profile = resolve_profile(params, args.profile)
    except ConfigError as error:
        parser.exit(2, f"ran runs: {error}\n")
    runs, selected = all_runs(params), selected_runs(params, profile["name"])
    if args.json:
        print(json.dumps({"profile": profile, "seeds": params["seeds"], "runs": runs, "selected": selected},
                         indent=2))
        return 0
    print(f"profile {profile['name']}: {profile['iterations']} iterations, data {profile['data']}; "
          f"{len(selected)} of {len(runs)} runs selected x {len(params['seeds'])} seed(s)")
    for run in runs:
        details = " ".join(f"{k}={run[k]}" for k in ("network", "attention", "learning", "mask", "noise") if run[k])
        mark = " " if run["run"] in selected else "-"
        print(f"{mark} {run['run']:<30} {run['dataset']:<8} {details}")
    if len(selected) < len(runs):
        print("(-: not selected by this profile; the workflow marks it 'not run')")
    return 0
