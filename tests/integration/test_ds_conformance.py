"""The Durable Streams conformance suite against sluice's /v1/stream face.

tests/ds/conformance.test.mjs hands runConformanceTests (npm package
@durable-streams/server-conformance-tests, pinned in tests/ds/package-lock.json)
the base URL of a real sluiced; vitest runs every default test. This test
asserts that all of them ran and passed (the exact count is printed) and
that none failed. The long-poll timeout is short (--long-poll-timeout 1)
so the suite's long-poll cases finish quickly.

Skips (77) when node or the npm modules are missing, except under CI=true
where that is a failure (tools/install-deps.sh test installs them).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

DS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ds")
EXPECTED = 332  # the suite's default tests (subscription tests are opt-in)


def main():
    H.require_node_modules(DS_DIR, "@durable-streams/server-conformance-tests")
    # --cors-origin: the suite checks CORS preflights (a DS server serves
    # browsers); --max-body-bytes: its 10 MiB append must be read whole to
    # be answered 413 (a connection closed mid-upload fails fetch()).
    with H.Server(args=["--long-poll-timeout", "1", "--cors-origin", "*",
                        "--max-body-bytes", "16m"]) as srv:
        env = dict(os.environ, DS_BASE_URL=srv.url("/").rstrip("/"), DS_LONG_POLL_MS="2000",
                   NO_COLOR="1", FORCE_COLOR="0")
        p = H.run([os.path.join(DS_DIR, "node_modules", ".bin", "vitest"), "run",
                   "--reporter=default"], timeout=600 * H.slow_factor(), env=env, cwd=DS_DIR)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        summary = [l for l in out.splitlines() if re.search(r"^\s*Tests\s", l)]
        fails = [l.strip() for l in out.splitlines() if "FAIL" in l or re.search(r"^\s*[×✗]", l)]
        for l in fails[:80]:
            print(l)
        H.check(summary, "vitest printed a summary; output tail:\n%s" % out[-4000:])
        line = summary[-1]
        print("conformance:", line.strip())
        passed = int(re.search(r"(\d+) passed", line).group(1)) if "passed" in line else 0
        failed = int(re.search(r"(\d+) failed", line).group(1)) if "failed" in line else 0
        print("conformance: %d of %d default tests passed, %d failed" % (passed, EXPECTED, failed))
        H.check_eq(failed, 0, "failed conformance tests")
        H.check_eq(passed, EXPECTED, "passed conformance tests")
        H.check_eq(p.returncode, 0, "vitest exit code")
        srv.assert_healthy("after the conformance suite")


if __name__ == "__main__":
    main()
