"""The `mini-unlearn` command (built on click; ``mini-unlearn --help`` and ``mini-unlearn COMMAND --help``).

    mini-unlearn run --method mip_editor --ratio 0.05 --seed 0 [--set lr=1e-4 ...] [--rounds 3] --out results/
    mini-unlearn tune --methods all --out results/tuning
    mini-unlearn compare --methods all --ratios 0.05 0.10 0.15 --seeds 0 1 2 [--tuned results/tuning] --out results/
    mini-unlearn report results/ [--out results/report]   # without a retain-only model: what needs none
    mini-unlearn --version

    mini-unlearn exercises [--check] [--notebooks DIR]
    mini-unlearn classroom release COURSE [CHAPTER ...]     # nbgrader assignments (the classroom extra)
    mini-unlearn classroom autograde COURSE CHAPTER NOTEBOOK --student NAME
    mini-unlearn classroom table                            # every exercise, its checker and points
    mini-unlearn sample DIR [--n-profiles N] [--seed S]     # the committed data/ sample
    mini-unlearn export-mllmu DIR [--n-profiles N] [--seed S] [--format parquet|jsonl]
    mini-unlearn retrain [--directory DIR]                  # rebuild the shipped course models
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from mini_unlearn import __version__   # the package is imported anyway: this module is inside it

EPILOG = "The course, chapter 10, shows what these commands produce: https://github.com/mini-unlearn/mini_unlearn"


class Several(click.Option):
    """An option that takes every value up to the next option: ``--ratios 0.05 0.10 0.15``.

    click reads one value per option; this one also takes the values that follow it (``--ratios 0.05
    --ratios 0.10`` and ``--ratios 0.05,0.10`` work too). The values arrive as a list of strings."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("multiple", True)
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser, ctx) -> None:
        super().add_to_parser(parser, ctx)
        options = {**getattr(parser, "_long_opt", {}), **getattr(parser, "_short_opt", {})}
        for name in self.opts:
            option = options.get(name)
            if option is None:                  # another click parser: one value per option, still correct
                continue
            original = option.process

            def process(value, state, original=original):
                original(value, state)
                while state.rargs and not is_option(state.rargs[0]):
                    original(state.rargs.pop(0), state)
            option.process = process


def is_option(text: str) -> bool:
    if not text.startswith("-") or text == "-":
        return False
    try:
        float(text)
        return False                            # a negative number is a value
    except ValueError:
        return True


def split_values(values, kind, option: str) -> list:
    out = []
    for value in values:
        for part in str(value).replace(",", " ").split():
            try:
                out.append(kind(part))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a valid {kind.__name__}", param_hint=option) from None
    if not out:
        raise click.BadParameter("give at least one value", param_hint=option)
    return out


def resolve_methods(values, option: str = "--methods") -> list[str]:
    from mini_unlearn.methods import available

    names = split_values(values, str, option)
    if names == ["all"]:
        return available()
    unknown = [name for name in names if name not in available()]
    if unknown:
        raise click.BadParameter(f"unknown method {unknown[0]!r}; available: {', '.join(available())} (or 'all')",
                                 param_hint=option)
    return names


def require_ratio_option(ratio: float, option: str = "--ratio") -> float:
    from mini_unlearn.bench.splits import require_ratio

    try:
        return require_ratio(ratio)
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint=option) from None


NO_REFERENCE = ("no retain-only model (--reference): `mini-unlearn report` gives the scores and the changes "
                "against the vanilla model, not the share of the gap closed")
PLANTED = "planted"      # ``--model planted``: the shipped planted model (chapters 05-08's ground truth)


def load_inputs(model: str | None, preset: str, bench_spec: str, device: str | None, check=None):
    """The model and the benchmark: the course's (``--preset``), the planted model (``--model planted``) or
    a folder (``--model PATH``), and the course benchmark, MLLMU-Bench files (``--bench mllmu:PATH``), the course's
    CLEAR (``--bench clear``: the course's people in CLEAR's shape, whose vanilla and retain-only models ship) or
    CLEAR files (``--bench clear:PATH``), which need a model trained on them (``--model PATH``), checked before
    anything is read.
    ``check(bench)``, when given, runs once the benchmark is read and before the model is loaded (an option
    that depends on the benchmark: ``run --rounds``)."""
    import mini_unlearn as mu

    if bench_spec == "course":
        from mini_unlearn.release import course_benchmark

        bench = course_benchmark()
    elif bench_spec.startswith("mllmu:"):
        try:
            bench = mu.bench.load_mllmu(bench_spec.split(":", 1)[1])
        except (OSError, ValueError) as error:
            raise click.BadParameter(f"cannot read MLLMU-Bench files: {error}", param_hint="--bench") from None
    elif bench_spec == "clear" or bench_spec.startswith("clear:"):
        if model == PLANTED or (model is None and bench_spec != "clear"):
            raise click.BadParameter(f"--bench {bench_spec} needs --model PATH, a model trained on that CLEAR: the "
                                     f"course's models (--bench clear has its own) and the planted model know the "
                                     f"course's people only", param_hint="--model")
        try:
            if bench_spec == "clear":
                from mini_unlearn.release import course_clear

                bench = course_clear()
            else:
                bench = mu.bench.load_clear(bench_spec.split(":", 1)[1])
        except (OSError, ValueError) as error:
            raise click.BadParameter(f"cannot read CLEAR files: {error}", param_hint="--bench") from None
    else:
        raise click.BadParameter(f"expected 'course' or 'mllmu:PATH' (MLLMU-Bench files), or 'clear' or 'clear:PATH' "
                                 f"(CLEAR); got {bench_spec!r}", param_hint="--bench")
    if check is not None:
        check(bench)
    if model == PLANTED:
        try:
            vlm = mu.models.planted(bench, preset=preset, device=device)
        except (OSError, ValueError, TypeError) as error:
            raise click.BadParameter(f"cannot load the planted model: {error}", param_hint="--model") from None
    elif model is not None:
        try:
            vlm = mu.models.load_vlm(model, device=device)
        except (OSError, ValueError, TypeError) as error:
            raise click.BadParameter(f"cannot load a model from {model!r}: {error}", param_hint="--model") from None
    else:
        vlm = mu.models.vanilla(bench, preset=preset, device=device)
    return vlm, bench


def planted_ratio(vlm) -> float | None:
    """The forget ratio a planted model was made for (its card's cache key), None for any other model."""
    key = (getattr(vlm, "card", {}) or {}).get("cache_key") or {}
    return float(key["ratio"]) if key.get("kind") == PLANTED else None


def retain_only_for(vlm, bench, reference: str | None, device: str | None, ratios: list[float] = (),
                    option: str = "--ratios"):
    """A callable ratio → the model that never saw the forget people: the course's (for a course model),
    the retain-only model a planted model was made from, or the folder given by ``--reference``; None
    when there is none.

    A planted model holds the forget people of its own ratio only (at another ratio the forget set mixes
    planted and ordinarily learned people), so any other ratio in ``ratios`` is refused here, before
    anything runs (``option`` names the argument in the error)."""
    import mini_unlearn as mu

    card = getattr(vlm, "card", {}) or {}
    planted = planted_ratio(vlm)
    if planted is not None:
        wrong = [ratio for ratio in ratios if abs(ratio - planted) > 1e-9]
        if wrong:
            raise click.BadParameter(
                f"the planted model holds the forget people of ratio {planted:g} only; "
                f"got {', '.join(f'{r:g}' for r in wrong)}: at another ratio its forget set mixes planted and "
                f"ordinarily learned people. Use {option} {planted:g}", param_hint=option)
    if reference is not None:
        try:
            fixed = mu.models.load_vlm(reference, device=device)
        except (OSError, ValueError, TypeError) as error:
            raise click.BadParameter(f"cannot load a model from {reference!r}: {error}",
                                     param_hint="--reference") from None
        return lambda ratio: fixed
    key = card.get("cache_key") or {}
    if key.get("kind") == "vanilla":
        return lambda ratio: mu.models.retain_only(bench, ratio, preset=card["preset"], seed=card["seed"], device=device)
    if planted is not None:
        try:
            made_from = mu.models.retain_only_key(bench, planted, preset=card["preset"], seed=card["seed"])
        except (KeyError, ValueError, TypeError):
            made_from = None
        if made_from != key.get("base"):
            raise click.BadParameter(
                "this planted model was not made from the course's retain-only model on this benchmark "
                "(another recipe, preset or benchmark): pass the model it was made from with --reference",
                param_hint="--model")
        return lambda ratio: mu.models.retain_only(bench, planted, preset=card["preset"], seed=card["seed"],
                                                   device=device)
    return None


def retrained_for(vlm, bench, seeds: list[int], device) -> dict:
    """``{seed: ratio -> the course's retain-only recipe trained at that seed}`` for ``--retrain-seeds``; the
    course model only (the recipe is the course's), refused otherwise."""
    import mini_unlearn as mu

    if not seeds:
        return {}
    card = getattr(vlm, "card", {}) or {}
    if (card.get("cache_key") or {}).get("kind") != "vanilla":
        raise click.BadParameter("retrains the course's retain-only recipe, so it needs the course model (no --model)",
                                 param_hint="--retrain-seeds")
    return mu.models.retrains(bench, seeds, card["preset"], device=device)


def rounds_fit(bench, rounds: int, ratio: float) -> None:
    """``--rounds`` must not exceed the forget people at ``ratio`` (each request forgets at least one)."""
    count = len(bench.forget_ids(ratio))
    if rounds > count:
        raise click.BadParameter(f"{rounds} rounds but ratio {ratio:g} forgets {count} people in {bench.name}: each "
                                 f"request forgets at least one person; use --rounds 1 to {count}",
                                 param_hint="--rounds")


def fail_clearly(run):
    """Run ``run()``; a ValueError / TypeError / FileNotFoundError becomes a one-line click error."""
    try:
        return run()
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, KeyError) as error:
        raise click.ClickException(str(error)) from None


model_options = [
    click.option("--model", type=click.Path(), default=None,
                 help="a local checkpoint folder, or 'planted': the planted model of chapters 05-08, forget "
                      "ratio 0.05 only (default: the course model; a folder named planted: ./planted)"),
    click.option("--preset", default="tiny", show_default=True,
                 help="the preset of the course model (without --model) or of --model planted"),
    click.option("--bench", "bench_spec", default="course", show_default=True,
                 help="'course' (the generated benchmark), 'mllmu:PATH' (MLLMU-Bench files), 'clear' (the course's "
                      "people in CLEAR's shape, with its own shipped models) or 'clear:PATH' (CLEAR's files, with "
                      "--model PATH)"),
    click.option("--reference", type=click.Path(), default=None,
                 help="the retain-only model's folder (default: the course's, for the course model and "
                      "the planted model)"),
    click.option("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)"),
]


def with_model_options(function):
    for option in reversed(model_options):
        function = option(function)
    return function


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mini-unlearn", message="%(prog)s %(version)s",
                      help="Print mini_unlearn's version (mini_unlearn.__version__) and exit.")
def main_group():
    """mini_unlearn: machine unlearning in vision-language models — run, compare and report methods."""


@main_group.command(epilog=EPILOG)
@click.option("--method", required=True, help="a registered method (mini_unlearn.methods.available())")
@click.option("--ratio", type=float, default=0.05, show_default=True, help="the forget ratio, in (0, 1)")
@click.option("--seed", type=int, default=0, show_default=True, help="the unlearning seed")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE", help="a hyperparameter; repeat the option")
@click.option("--setting", default=None, help="the setting's name in the results (default: 'default', or 'custom' with "
              "--set; with --rounds N > 1, 'default-Nrounds' or 'custom-Nrounds')")
@click.option("--rounds", type=int, default=1, show_default=True,
              help="the forget people arrive in this many requests, each unlearned from the last one's model "
                   "(1 to the number of forget people); the scores after each round go to OUT/sequences/")
@with_model_options
@click.option("--audit/--no-audit", default=False, show_default=True, help="also run every attack of chapter 09")
@click.option("--save", type=click.Path(), default=None, help="also save the unlearned model here (a new folder)")
@click.option("--out", required=True, type=click.Path(), help="the results folder")
def run(method, ratio, seed, assignments, setting, rounds, model, preset, bench_spec, reference, device, audit, save,
        out):
    """Unlearn one method at one ratio and seed, evaluate it, and record the result in OUT."""
    import mini_unlearn as mu
    from mini_unlearn.results import Cell
    from mini_unlearn.results.sequential import sequence_setting

    methods = resolve_methods([method], "--method")
    ratio = require_ratio_option(ratio)
    if rounds < 1:
        raise click.BadParameter(f"the forget people arrive in at least 1 request; got {rounds}", param_hint="--rounds")
    overrides = fail_clearly(lambda: mu.results.parse_overrides(methods[0], assignments))
    if save is not None and Path(save).exists():
        raise click.BadParameter(f"{save!r} exists; the unlearned model is only written to a new folder",
                                 param_hint="--save")
    if rounds == 1:
        vlm, bench = load_inputs(model, preset, bench_spec, device)
    else:
        vlm, bench = load_inputs(model, preset, bench_spec, device, check=lambda bench: rounds_fit(bench, rounds, ratio))
    never = retain_only_for(vlm, bench, reference, device, [ratio], "--ratio")
    cell = Cell(methods[0], setting or sequence_setting("custom" if overrides else "default", rounds), ratio, seed)
    folder = fail_clearly(lambda: mu.results.ResultsFolder(out, mu.results.identity(vlm, bench)))
    for anchor, model_of in (("vanilla", lambda r: vlm), ("retain_only", never)):
        if model_of is not None and not folder.done(Cell(anchor, mu.results.REFERENCE, ratio)):
            folder.write(mu.results.anchor_cell(anchor, model_of(ratio), vlm, bench, ratio, audit=audit))
    if folder.done(cell) and save is None:
        click.echo(f"{cell.name}: already in {out} (delete its record to run it again)")
        return
    if rounds == 1:
        record, result = fail_clearly(lambda: mu.results.run_cell(vlm, bench, cell, overrides, audit=audit,
                                                                  device=device, progress=True))
    else:
        from mini_unlearn.results.sequential import run_sequence_cell, write_sequence

        record, result = fail_clearly(lambda: run_sequence_cell(vlm, bench, cell, overrides, rounds, audit=audit,
                                                                device=device, progress=True))
        click.echo(repr(result))
        click.echo(f"wrote {write_sequence(folder.path, cell, result)} (the scores after each of the {rounds} rounds)")
    path = folder.write(record)
    click.echo(f"wrote {path} ({record.seconds['total']:.1f} s)")
    if save is not None:
        click.echo(f"saved the unlearned model to {result.vlm.save_pretrained(save)}")
    if never is None and not folder.done(Cell("retain_only", mu.results.REFERENCE, ratio)):
        click.echo(NO_REFERENCE)


@main_group.command(epilog=EPILOG)
@click.option("--methods", cls=Several, default=["all"], show_default=True, help="method names, or 'all'")
@click.option("--seed", type=int, default=0, show_default=True)
@with_model_options
@click.option("--out", required=True, type=click.Path(), help="the tuning folder (its tuned.json feeds --tuned)")
def tune(methods, seed, model, preset, bench_spec, reference, device, out):
    """Tune every method with the same budget on the validation people (never a reported forget set)."""
    import mini_unlearn as mu

    names = resolve_methods(methods)
    vlm, bench = load_inputs(model, preset, bench_spec, device)
    chosen = fail_clearly(lambda: mu.results.tune(vlm, bench, names, out, seed=seed))
    for method, overrides in chosen.items():
        click.echo(f"{method}: {overrides}")
    click.echo(f"wrote {Path(out) / 'tuned.json'}")


@main_group.command(epilog=EPILOG)
@click.option("--methods", cls=Several, default=["all"], show_default=True, help="method names, or 'all'")
@click.option("--ratios", cls=Several, default=["0.05"], show_default=True, help="forget ratios, e.g. 0.05 0.10")
@click.option("--seeds", cls=Several, default=["0"], show_default=True, help="unlearning seeds, e.g. 0 1 2")
@click.option("--tuned", type=click.Path(), default=None, help="a tuning folder or tuned.json: adds the 'tuned' setting")
@click.option("--no-default", is_flag=True, help="skip the methods' default setting (with --tuned)")
@click.option("--retrain-seeds", cls=Several, default=[], help="also record the course's retain-only recipe at these "
              "training seeds as 'retrain' rows, e.g. 1 (course model only; trains where none is shipped)")
@with_model_options
@click.option("--audit/--no-audit", default=False, show_default=True, help="also run every attack of chapter 09")
@click.option("--out", required=True, type=click.Path(), help="the results folder (a finished cell is not recomputed)")
def compare(methods, ratios, seeds, tuned, no_default, retrain_seeds, model, preset, bench_spec, reference, device, audit,
            out):
    """Every method × setting × ratio × seed into one results folder, resumable."""
    import mini_unlearn as mu

    names = resolve_methods(methods)
    ratios = [require_ratio_option(r, "--ratios") for r in split_values(ratios, float, "--ratios")]
    seeds = split_values(seeds, int, "--seeds")
    retrain_seeds = split_values(retrain_seeds, int, "--retrain-seeds") if retrain_seeds else []
    settings = {} if no_default else {"default": None}
    if tuned is not None:
        settings["tuned"] = fail_clearly(lambda: mu.results.read_tuned(tuned))
    if not settings:
        raise click.BadParameter("--no-default needs --tuned: there is no setting left to run", param_hint="--no-default")
    fail_clearly(lambda: mu.results.plan(names, ratios, seeds, settings))        # every error before any loading
    vlm, bench = load_inputs(model, preset, bench_spec, device)
    never = retain_only_for(vlm, bench, reference, device, ratios, "--ratios")
    retrains = retrained_for(vlm, bench, retrain_seeds, device)
    records = fail_clearly(lambda: mu.results.compare(vlm, bench, out, names, ratios, seeds, settings,
                                                      reference=never, retrains=retrains, audit=audit, device=device))
    click.echo(f"{len(records)} cells in {out}")
    if never is None and mu.results.missing_references(mu.results.load(out)):
        click.echo(NO_REFERENCE)


@main_group.command(epilog=EPILOG)
@click.argument("results", type=click.Path())
@click.option("--out", type=click.Path(), default=None, help="where to write it (default: RESULTS/report)")
def report(results, out):
    """Write the leaderboard of a results folder as Markdown, HTML and PNG plots."""
    import mini_unlearn as mu

    loaded = fail_clearly(lambda: mu.results.load(results))
    written = fail_clearly(lambda: mu.results.write_report(loaded, out or Path(results) / "report"))
    for path in written:
        click.echo(f"wrote {path}")
    missing = [ratio for ratio in mu.results.missing_references(loaded)
               if any(r.ratio == ratio and r.setting != mu.results.REFERENCE for r in loaded.records)]
    if missing:
        audit = " and the audit" if not mu.results.audit_changes(mu.results.at_ratios(loaded, missing)).empty else ""
        click.echo(f"no retain-only model at ratio {', '.join(f'{r:g}' for r in missing)}: the report gives what "
                   f"needs none there (the scores, the changes against the vanilla model{audit}), not the share "
                   f"of the gap closed; its last section says how to add one (--reference)")


# The course's commands (exercises, classroom, retrain) import its tooling inside the command: the command line is
# the application on top, and `import mini_unlearn` never imports mini_unlearn.course (tests/test_layering.py).
@main_group.command(epilog=EPILOG)
@click.option("--check", is_flag=True, help="only list stale editions; exit 1 if any")
@click.option("--notebooks", default="notebooks", show_default=True, help="folder of the chapter notebooks")
def exercises(check, notebooks):
    """Generate the exercise editions of the chapter notebooks."""
    from mini_unlearn.course.exercises import generate_all

    changed = generate_all(notebooks, check=check)
    for path in changed:
        click.echo(("stale: " if check else "wrote: ") + str(path))
    if check:
        click.echo(f"{len(changed)} stale exercise edition(s)" if changed else "exercise editions are up to date")
        if changed:
            sys.exit(1)


@main_group.group(epilog=EPILOG)
def classroom():
    """Release the chapters as nbgrader assignments and autograde what students hand in."""


@classroom.command("release", epilog=EPILOG)
@click.argument("course", type=click.Path(file_okay=False))
@click.argument("chapters", nargs=-1)
@click.option("--notebooks", default="notebooks", show_default=True, help="folder of the chapter notebooks")
def classroom_release(course, chapters, notebooks):
    """Release CHAPTERS (names like 05 or 05_manu; all by default) into the nbgrader course COURSE."""
    from mini_unlearn.course.classroom import ClassroomError, release

    try:
        for path in release(course, list(chapters) or None, notebooks):
            click.echo(f"released {path}")
    except ClassroomError as error:
        raise click.ClickException(str(error)) from None


@classroom.command("autograde", epilog=EPILOG)
@click.argument("course", type=click.Path(exists=True, file_okay=False))
@click.argument("chapter")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("--student", required=True, help="the student's id (letters, digits, . _ -)")
def classroom_autograde(course, chapter, notebook, student):
    """Autograde a student's NOTEBOOK of the released CHAPTER (e.g. 05_manu) and print the score."""
    from mini_unlearn.course.classroom import ClassroomError, autograde

    try:
        click.echo(str(autograde(course, chapter, notebook, student)))
    except ClassroomError as error:
        raise click.ClickException(str(error)) from None


@classroom.command("table", epilog=EPILOG)
@click.option("--notebooks", default="notebooks", show_default=True, help="folder of the chapter notebooks")
def classroom_table(notebooks):
    """Print every chapter's exercises, checkers and points as a Markdown table."""
    from mini_unlearn.course.classroom import exercise_table_markdown

    click.echo(exercise_table_markdown(notebooks), nl=False)


def benchmark_options(function):
    function = click.option("--seed", type=int, default=0, show_default=True)(function)
    function = click.option("--n-profiles", type=int, default=40, show_default=True)(function)
    return click.argument("directory", type=click.Path())(function)


@main_group.command(epilog=EPILOG)
@benchmark_options
def sample(directory, n_profiles, seed):
    """Write the small data/ sample of the course benchmark."""
    from mini_unlearn.bench import make_benchmark
    from mini_unlearn.bench.sample import write_sample

    written = write_sample(make_benchmark(n_profiles, seed=seed), directory)
    click.echo(f"wrote {len(written)} files under {directory}")


@main_group.command("export-mllmu", epilog=EPILOG)
@benchmark_options
@click.option("--format", "file_format", type=click.Choice(["parquet", "jsonl"]), default="parquet", show_default=True)
def export_mllmu(directory, n_profiles, seed, file_format):
    """Write a generated benchmark in MLLMU-Bench's file schema."""
    from mini_unlearn.bench import make_benchmark, write_mllmu

    write_mllmu(make_benchmark(n_profiles, seed=seed), directory, format=file_format)
    click.echo(f"wrote the benchmark in MLLMU-Bench's schema under {directory}")


@main_group.command(epilog=EPILOG)
@click.option("--directory", default=None, help="where to write them (default: the checkout's mini_unlearn/data/models)")
@click.option("--planted-only", is_flag=True, help="rebuild only the planted model (chapters 05-08's ground "
              "truth), from the shipped retain-only model: about 3 minutes")
def retrain(directory, planted_only):
    """Train the course's shipped models from scratch, check them, write mini_unlearn/data/models."""
    from mini_unlearn.course.retrain import rebuild_course_models, rebuild_planted

    for folder in [rebuild_planted(directory)] if planted_only else rebuild_course_models(directory):
        click.echo(f"wrote {folder}")


def main(argv=None) -> int:
    """The console script: returns the exit status (0 on success) instead of exiting, for tests."""
    try:
        main_group.main(args=argv, prog_name="mini-unlearn", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
