"""``python -m weakseg.bundle``: print the bundle folder; ``python -m weakseg.bundle copy DEST``: copy it."""

import sys

from weakseg.bundle import bundle_dir, copy_bundle


def main(argv: list[str]) -> int:
    if not argv:
        print(bundle_dir())
        return 0
    if argv[0] == "copy" and len(argv) == 2:
        print(copy_bundle(argv[1]))
        return 0
    print("usage: python -m weakseg.bundle [copy DEST]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
