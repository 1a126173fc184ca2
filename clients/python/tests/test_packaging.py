"""The package builds as a wheel with the in-tree, standard-library-only
backend that `pip install clients/python` uses (no index needed)."""

from __future__ import annotations

import os
import sys
import tempfile
import unittest
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TestPackaging(unittest.TestCase):
    def test_build_wheel(self):
        sys.path.insert(0, os.path.join(HERE, "_build"))
        try:
            import postbox_build
        finally:
            sys.path.pop(0)
        self.assertEqual(postbox_build.get_requires_for_build_wheel(), [])
        with tempfile.TemporaryDirectory() as d:
            name = postbox_build.build_wheel(d)
            self.assertEqual(name, "postbox-0.1.0-py3-none-any.whl")
            with zipfile.ZipFile(os.path.join(d, name)) as z:
                names = set(z.namelist())
                meta = z.read("postbox-0.1.0.dist-info/METADATA").decode()
            for f in ("postbox/__init__.py", "postbox/wire.py", "postbox/client.py", "postbox/errors.py",
                      "postbox/transport.py", "postbox/py.typed", "postbox-0.1.0.dist-info/RECORD"):
                self.assertIn(f, names)
            self.assertIn("Name: postbox", meta)
            self.assertIn("Requires-Python: >=3.11", meta)
            self.assertFalse([n for n in names if "__pycache__" in n])
            sdist = postbox_build.build_sdist(d)
            self.assertTrue(os.path.exists(os.path.join(d, sdist)))


if __name__ == "__main__":
    unittest.main()
