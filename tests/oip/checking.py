"""What the check scripts here share: one printed line per check, the first
failure ends the script with exit status 1.

    from checking import Failure, ok, run
"""

import sys
import traceback


class Failure(Exception):
    pass


def ok(what, condition, seen):
    """One check: prints `ok    what: seen`, or raises Failure."""
    if not condition:
        raise Failure(f"{what}: {seen}")
    print(f"ok    {what}: {seen}", flush=True)


def run(main, *args):
    """Runs main(*args): exits 1 after printing FAILED on a failed check or
    any other exception."""
    try:
        main(*args)
    except Failure as failure:
        print(f"FAILED {failure}", flush=True)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - any other error is a failed check too
        traceback.print_exc()
        print("FAILED with an exception", flush=True)
        sys.exit(1)
