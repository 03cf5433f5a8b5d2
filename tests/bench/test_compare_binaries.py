"""CTest's bench-label run of compare_binaries.py in its quick mode, with the
binary under test as both builds: every cell ran for direct and both, both
logs showed every message relayed and signed as its variant wants
(compare checks that), and the report has a row per cell. Never how fast."""
import io
import unittest

import compare_binaries as C
from stampd_harness import stampd_bin
import test_main


class CompareBinariesTest(unittest.TestCase):
    def test_quick_run(self):
        binary = stampd_bin()
        results = C.compare(binary, binary, C.QUICK_CELLS, 1)
        self.assertEqual(len(results["cells"]), len(C.QUICK_CELLS))
        for cell, (size, _, variant) in zip(results["cells"], C.QUICK_CELLS):
            self.assertEqual((cell["size"], cell["variant"]), (size, variant.name))
            for name in ("direct",) + C.NAMES:
                self.assertEqual(len(cell[name]), 1, (size, name))
                self.assertGreater(cell[name][0], 0, (size, name))
            for name in C.NAMES:
                self.assertEqual(len(cell["cpu"][name]), 1, (size, name))
                self.assertGreaterEqual(cell["cpu"][name][0], 0, (size, name))
        out = io.StringIO()
        C.report(results, binary, binary, out)
        print(out.getvalue())
        rows = [l for l in out.getvalue().splitlines() if l.startswith("| ") and "variant" not in l]
        self.assertEqual(len(rows), len(C.QUICK_CELLS), out.getvalue())


if __name__ == "__main__":
    test_main.main()
