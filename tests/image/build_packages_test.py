"""The image's build stage installs every library package scripts/install-deps installs.

The two lists are kept by hand in two files; when store/ added libcurl and expat to install-deps
only, the image build broke at `find_package(CURL)` after minutes of apt and compiling. This check
reads both files and names what the Dockerfile lacks, in well under a second, without podman.
"""
import os
import re
import sys
import unittest

SOURCE = os.environ.get("REPLBOOT_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def install_deps_packages(text):
    body = re.search(r"^packages=\((.*?)^\)", text, re.S | re.M)
    assert body, "scripts/install-deps: no packages=( ... ) list"
    words = []
    for line in body.group(1).splitlines():
        words += line.split("#", 1)[0].split()
    return set(words)


def dockerfile_build_packages(text):
    stage = text.split(" AS build", 1)[1].split("\nFROM ", 1)[0]
    install = re.search(r"apt-get install[^\n]*\\\n(.*?)&& rm", stage, re.S)
    assert install, "Dockerfile: no apt-get install in the build stage"
    return set(install.group(1).replace("\\", " ").split())


class BuildPackagesTest(unittest.TestCase):
    def test_build_stage_has_every_library_install_deps_has(self):
        with open(os.path.join(SOURCE, "scripts", "install-deps")) as f:
            wanted = {p for p in install_deps_packages(f.read()) if p.endswith("-dev")}
        with open(os.path.join(SOURCE, "Dockerfile")) as f:
            have = dockerfile_build_packages(f.read())
        # Fuzzing and sanitizer runtimes are for CI, not for building the daemon.
        missing = sorted(wanted - have - {"libclang-rt-14-dev"})
        self.assertEqual(missing, [], f"the Dockerfile's build stage lacks {missing}")

    def test_parsers_see_the_lists(self):
        self.assertIn("libssl-dev", install_deps_packages("packages=(\n  a libssl-dev # x\n)\n"))


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False).result.wasSuccessful() else 1)
