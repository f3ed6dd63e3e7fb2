"""The `mini-unlearn` command.

    mini-unlearn exercises [--check] [--notebooks DIR]
    mini-unlearn sample DIR [--n-profiles N] [--seed S]     # the committed data/ sample
    mini-unlearn export-mllmu DIR [--n-profiles N] [--seed S] [--format parquet|jsonl]
    mini-unlearn retrain [--directory DIR]                  # rebuild the shipped course models
"""

import argparse
import sys


def cmd_exercises(args):
    from mini_unlearn.exercises import generate_all

    changed = generate_all(args.notebooks, check=args.check)
    for path in changed:
        print(("stale: " if args.check else "wrote: ") + str(path))
    if args.check:
        print(f"{len(changed)} stale exercise edition(s)" if changed else "exercise editions are up to date")
        return 1 if changed else 0
    return 0


def cmd_sample(args):
    from mini_unlearn.bench import make_benchmark
    from mini_unlearn.bench.sample import write_sample

    written = write_sample(make_benchmark(args.n_profiles, seed=args.seed), args.directory)
    print(f"wrote {len(written)} files under {args.directory}")
    return 0


def cmd_export_mllmu(args):
    from mini_unlearn.bench import make_benchmark, write_mllmu

    write_mllmu(make_benchmark(args.n_profiles, seed=args.seed), args.directory, format=args.format)
    print(f"wrote the benchmark in MLLMU-Bench's schema under {args.directory}")
    return 0


def cmd_retrain(args):
    from mini_unlearn.release import rebuild_course_models

    for folder in rebuild_course_models(args.directory):
        print(f"wrote {folder}")
    return 0


def _benchmark_arguments(p):
    p.add_argument("directory")
    p.add_argument("--n-profiles", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mini-unlearn", description="machine unlearning in VLMs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("exercises", help="generate the exercise editions of the chapter notebooks")
    p.add_argument("--check", action="store_true", help="only list stale editions; exit 1 if any")
    p.add_argument("--notebooks", default="notebooks", help="folder of the chapter notebooks")
    p.set_defaults(func=cmd_exercises)
    p = sub.add_parser("sample", help="write the small data/ sample of the course benchmark")
    _benchmark_arguments(p)
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("export-mllmu", help="write a generated benchmark in MLLMU-Bench's file schema")
    _benchmark_arguments(p)
    p.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    p.set_defaults(func=cmd_export_mllmu)
    p = sub.add_parser("retrain", help="train the course's shipped models from scratch, check them, write data/models")
    p.add_argument("--directory", default=None, help="where to write them (default: the checkout's data/models)")
    p.set_defaults(func=cmd_retrain)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
