"""The entry point of every Python test script: unittest, made honest for CI.

    if __name__ == "__main__":
        test_main.main()

A test that skips because a tool, a package or a privilege is missing proves
nothing, so when CI=true a skip fails the script, unless the test declared
that it does not apply to this build (`raise test_main.not_applicable(why)`,
e.g. a check of the Release binary's libraries under a sanitizer build).

Each script also writes what it ran to BUILD_DIR/test-results/LABEL.NAME.json
(LABEL is the script's folder: integration, interop, bench), which
tests/summary.py adds up at the end of tests/run.sh.
"""
import json
import os
import sys
import time
import unittest

import stampd_harness

_NOT_APPLICABLE = "not applicable: "


def not_applicable(why):
    """not_applicable returns the SkipTest to raise for a test that has
    nothing to check in this build or configuration (never for a missing
    tool: install it in deploy/install-deps.sh instead)."""
    return unittest.SkipTest(_NOT_APPLICABLE + why)


def in_ci():
    """in_ci says whether this is a CI run (CI=true), where skips fail."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _script():
    path = os.path.abspath(sys.argv[0])
    return os.path.basename(os.path.dirname(path)), os.path.splitext(os.path.basename(path))[0]


def _write_record(result, seconds):
    label, name = _script()
    skipped = [{"test": t.id(), "reason": why} for t, why in result.skipped]
    record = {
        "label": label, "name": name, "seconds": round(seconds, 2),
        "ran": result.testsRun - len(result.skipped),
        "failed": len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses),
        "skipped": skipped,
    }
    out = os.path.join(stampd_harness.BUILD_DIR, "test-results")
    try:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "%s.%s.json" % (label, name)), "w") as f:
            json.dump(record, f, indent=1)
    except OSError as e:  # a read-only build tree must not fail the tests
        print("test_main: cannot write the result record: %s" % e, file=sys.stderr)


def main():
    """main runs the calling script's tests (unittest's command line), writes
    the result record, and exits non-zero on a failure, or in CI on a skip
    that is not declared not applicable."""
    started = time.monotonic()
    program = unittest.main(module="__main__", exit=False, verbosity=2)
    result = program.result
    _write_record(result, time.monotonic() - started)
    missing = [(t, why) for t, why in result.skipped if not why.startswith(_NOT_APPLICABLE)]
    if missing and in_ci():
        print("\nCI=true: %d test(s) skipped for a missing tool or privilege; "
              "that is a failure here:" % len(missing), file=sys.stderr)
        for test, why in missing:
            print("  %s: %s" % (test.id(), why), file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if result.wasSuccessful() else 1)
